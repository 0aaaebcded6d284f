package spec

import (
	"fmt"
	"testing"
)

func TestZZScratch(t *testing.T) {
	for _, src := range []string{
		"genrators: {}\n",
		"generators: a: {provider: openai: {}, model: \"m\"}\nsettings: \"math-ig\": {}\n",
		"generators: a: {provider: openai: {}, model: \"m\", price: {input: 1, output: 1}}\nsettings: \"math-ig\": {prompt: variant: \"jsn\"}\n",
		"generators: a: {provider: openai: {}, model: \"m\", price: {input: 1, output: 1}}\nsettings: \"math-ig\": {benchmarks: [\"gsm8k\", \"gsm9k\"]}\n",
		"generators: a: {provider: openai: {}, model: \"m\", price: {input: 1, output: 1}}\nsettings: \"math-ig\": {seed_data: revision: \"v2\"}\n",
		"generators: a: {\n  provider: openai: {}\n  model: 3\n}\n",
		"generators: {\n",
		"",
		"[1,2]",
		"generators: a: {provider: openai: {}, model: \"m\", price: {input: 1, output: 1}}\nsettings: \"math-ig\": {}\nstudent: hardware: gpu: \"H10\"\n",
		"generators: a: {provider: openai: {}, model: \"m\", price: {input: 1, output: 1}}\nsettings: \"math-ig\": {}\nbudgets: usd: -3\n",
	} {
		_, err := LoadBytes("agora.cue", []byte(src), t.TempDir())
		if ds, ok := err.(Diagnostics); ok {
			for _, d := range ds {
				fmt.Printf("%#v\n", d)
			}
		} else {
			fmt.Println("err:", err)
		}
		fmt.Println("----")
	}
}
