package generation

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ExampleCompletion returns a completion that a well-behaved generator
// could give to req: Result accepts it (unless the seed item itself breaks
// a rule, such as an instruction longer than MaxChars). The instance varies
// with n, and so does the surface form: n selects whether the open slot's
// marker is repeated, whether the end marker is present (as when it is a
// stop sequence) and whether a JSON object is fenced. Engine tests and the
// stand-in server use it to play the generator. It returns "" for a nil or
// invalid task.
func ExampleCompletion(t *Task, req Request, n int) string {
	if t.Validate() != nil {
		return ""
	}
	v := uint64(n) // a non-negative variation number, whatever n
	var seed SeedItem
	if t.Method != MethodInstance && req.Slot >= 0 {
		seed = t.Seeds[req.Slot%len(t.Seeds)]
	}
	inst := exampleInstance(t.Domain, t.Method, req, v)
	if t.Method == MethodResponse {
		inst.Instruction = seed.Instruction
	}

	if t.jsonFormat() {
		b, _ := json.Marshal(map[string]string{"instruction": inst.Instruction, "response": inst.Response})
		if v%2 == 1 {
			return "```json\n" + string(b) + "\n```"
		}
		return string(b)
	}

	end := "\n[END]"
	switch v % 3 {
	case 1:
		end = "\n\n[END]\n"
	case 2:
		end = "" // the end marker was a stop sequence
	}
	switch t.Method {
	case MethodInstance:
		if v%2 == 1 {
			return "INPUT:\n" + inst.Instruction + "\n\nOUTPUT:\n" + inst.Response + end
		}
		return inst.Instruction + "\n\nOUTPUT:\n" + inst.Response + end
	case MethodQuality:
		if v%2 == 1 {
			return "Revised Question:\n" + inst.Instruction + "\n\nRevised Answer:\n" + inst.Response + end
		}
		return inst.Instruction + "\n\nRevised Answer:\n" + inst.Response + end
	}
	return inst.Response + end
}

// exampleInstance makes a small, valid instance for the domain; quality
// enhancement of code gets assertion tests in its code block.
func exampleInstance(domain, method string, req Request, v uint64) Instance {
	topic := req.Topic
	if topic == "" {
		topic = "everyday arithmetic"
	}
	a, b, k := 3+v%47, 5+(v/47)%41, 2+uint64(req.Slot)%9
	switch domain {
	case DomainMath:
		return Instance{
			Instruction: fmt.Sprintf("(%s) A crate holds %d red and %d blue marbles. How many marbles are there in %d such crates?", topic, a, b, k),
			Response: fmt.Sprintf("One crate holds $%d + %d = %d$ marbles.\nSo %d crates hold $%d \\times %d = %d$ marbles.\n[RESULT] %d [/RESULT]",
				a, b, a+b, k, k, a+b, k*(a+b), k*(a+b)),
		}
	case DomainCode:
		name := fmt.Sprintf("scaled_sum_%d", v)
		code := fmt.Sprintf("def %s(xs):\n    # Sum first, then scale once.\n    return %d * sum(xs)\n", name, a)
		if method == MethodQuality {
			code += fmt.Sprintf("\n\nassert %s([]) == 0\nassert %s([1]) == %d\nassert %s([1, 2, -3]) == 0\n", name, name, a, name)
		}
		return Instance{
			Instruction: fmt.Sprintf("Write a function `%s(xs)` that returns the sum of the integers in the list xs multiplied by %d. It returns 0 for an empty list. (Topic: %s.)", name, a, topic),
			Response:    "```python\n" + code + "```",
		}
	}
	opening := req.Opening
	if opening == "" {
		opening = "Give me"
	}
	return Instance{
		Instruction: fmt.Sprintf("%s %d practical tips on %s, as a numbered list, each under 20 words.", opening, k, topic),
		Response:    strings.TrimSpace(tips(k, v)),
	}
}

func tips(k, v uint64) string {
	var b strings.Builder
	for i := uint64(1); i <= k; i++ {
		fmt.Fprintf(&b, "%d. Tip %d of set %d: start small and review your progress every week.\n", i, i, v)
	}
	return b.String()
}
