package analysis

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// PGR is the performance gap recovered, in percent:
// 100 × (student − base) / (ref − base). It is an error when ref equals
// base (a zero gap) or when any input is NaN or infinite.
func PGR(student, base, ref float64) (float64, error) {
	for _, in := range []struct {
		name string
		v    float64
	}{{"student", student}, {"base", base}, {"reference", ref}} {
		if !finite(in.v) {
			return 0, fmt.Errorf("PGR: %s score is %v, not a number", in.name, in.v)
		}
	}
	if ref == base {
		return 0, fmt.Errorf("PGR: zero gap: base and reference both score %s", fmtScore(base))
	}
	p := 100 * (student - base) / (ref - base)
	if !finite(p) {
		// Only reachable with gaps near the float limits.
		return 0, fmt.Errorf("PGR: 100 × (%s − %s) / (%s − %s) overflows", fmtScore(student), fmtScore(base), fmtScore(ref), fmtScore(base))
	}
	return p, nil
}

// PerDollar is PGR points per US dollar: pgr / usd. It is an error when
// usd is not positive or either input is NaN or infinite.
func PerDollar(pgr, usd float64) (float64, error) {
	if !finite(pgr) {
		return 0, fmt.Errorf("PGR per dollar: PGR is %v, not a number", pgr)
	}
	if !finite(usd) {
		return 0, fmt.Errorf("PGR per dollar: cost is %v, not a number", usd)
	}
	if usd <= 0 {
		return 0, fmt.Errorf("PGR per dollar: cost is $%s; it must be positive", fmtScore(usd))
	}
	r := pgr / usd
	if !finite(r) {
		return 0, fmt.Errorf("PGR per dollar: %s / %s overflows", fmtScore(pgr), fmtScore(usd))
	}
	return r, nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func fmtScore(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// Value is a number in a table, or a missing one with the reason.
type Value struct {
	V     float64
	Valid bool
	// Why says why the value is missing; empty when Valid.
	Why string
}

// Known is a present value; a NaN or infinite one is missing instead.
func Known(v float64) Value {
	if !finite(v) {
		return Missing(fmt.Sprintf("%v is not a number", v))
	}
	return Value{V: v, Valid: true}
}

// Missing is a missing value with the reason.
func Missing(why string) Value { return Value{Why: why} }

// Format renders the value with prec decimals, or "—" when missing.
func (v Value) Format(prec int) string {
	if !v.Valid {
		return "—"
	}
	return strconv.FormatFloat(v.V, 'f', prec, 64)
}

// String renders the value with one decimal, or "—" when missing.
func (v Value) String() string { return v.Format(1) }

// MarshalJSON writes the number, or null when missing.
func (v Value) MarshalJSON() ([]byte, error) {
	if !v.Valid {
		return []byte("null"), nil
	}
	return []byte(strconv.FormatFloat(v.V, 'g', -1, 64)), nil
}

// mean is the mean of the parts, missing (with the missing parts named)
// when any part is missing or there are none.
func mean(names []string, parts []Value) Value {
	if len(parts) == 0 {
		return Missing("nothing to average")
	}
	var missing []string
	sum := 0.0
	for i, p := range parts {
		if !p.Valid {
			missing = append(missing, names[i]+" ("+p.Why+")")
			continue
		}
		sum += p.V
	}
	if len(missing) > 0 {
		return Missing("missing " + strings.Join(missing, "; "))
	}
	return Known(sum / float64(len(parts)))
}
