package plan

import (
	"math"
	"testing"
)

// Every amount formats as money: no int64 overflow into
// "$-92,233,720,368,547,758.-8".
func TestDollarsAnyValue(t *testing.T) {
	for v, want := range map[float64]string{
		0:               "$0.00",
		1234.565:        "$1,234.57",
		-0.004:          "$0.00",
		-12.5:           "-$12.50",
		9.3e16:          "$93,000,000,000,000,000.00",
		1e19:            "$10,000,000,000,000,000,000.00",
		1e308:           "$1.00e+308",
		math.MaxFloat64: "$1.80e+308",
		math.Inf(1):     "$∞",
		math.Inf(-1):    "-$∞",
		math.NaN():      "$NaN",
		5e6:             "$5,000,000.00",
		0.125:           "$0.13",
	} {
		if got := Dollars(v); got != want {
			t.Errorf("Dollars(%g) = %q, want %q", v, got, want)
		}
	}
}
