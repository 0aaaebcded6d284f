package engine

import (
	"reflect"
	"testing"

	"github.com/agorabench/agora/spec"
)

// judgeMessages: a template's system message goes as one, or at the top
// of the user message for a judge whose chat template has no system
// role; without one there is the user message alone.
func TestJudgeMessages(t *testing.T) {
	for _, c := range []struct {
		system, how string
		want        []Message
	}{
		{"", spec.SystemMessage, []Message{{Role: "user", Content: "U"}}},
		{"", spec.SystemPrepend, []Message{{Role: "user", Content: "U"}}},
		{"S", spec.SystemMessage, []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "U"}}},
		{"S", "", []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "U"}}},
		{"S", spec.SystemPrepend, []Message{{Role: "user", Content: "S\n\nU"}}},
	} {
		if got := judgeMessages(c.system, "U", c.how); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q, %q: %+v, want %+v", c.system, c.how, got, c.want)
		}
	}
}
