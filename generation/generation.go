package generation

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/agorabench/agora/prompts"
	"github.com/agorabench/agora/spec"
)

// Domains, methods and variants: the spec's names.
const (
	DomainMath        = spec.DomainMath
	DomainCode        = spec.DomainCode
	DomainInstruction = spec.DomainInstruction

	MethodInstance = spec.MethodInstance
	MethodResponse = spec.MethodResponse
	MethodQuality  = spec.MethodQuality

	VariantFreeForm = spec.VariantFreeForm
	VariantJSON     = spec.VariantJSON
	VariantFile     = spec.VariantFile
)

// DefaultMaxChars is the length limit used when Task.MaxChars is zero: the
// student's 4096-token context at about 4 bytes a token.
const DefaultMaxChars = 4096 * 4

// NumDemonstrations is the number of in-context demonstrations of instance
// generation (fewer when the seed data has fewer items).
const NumDemonstrations = spec.NumDemonstrations

// SeedItem is one item of the seed data.
type SeedItem struct {
	ID, Instruction, Response string
}

// Task is one generate step: a setting's domain, method and meta-prompt
// applied to its seed data, for one grid cell. A Task is read-only once in
// use; its methods are safe for concurrent use.
type Task struct {
	// Domain, Method and Variant use the spec's names: math, code,
	// instruction_following; instance_generation, response_generation,
	// quality_enhancement; free-form, json, file.
	Domain, Method, Variant string
	// Template is the meta-prompt.
	Template *prompts.Template
	// Seed is the cell's seed.
	Seed int64
	// Seeds is the seed data.
	Seeds []SeedItem
	// Instances is the number of instances (slots) wanted.
	Instances int
	// MaxChars bounds len(instruction)+len(response) of an accepted
	// instance; zero means DefaultMaxChars, a negative value no limit.
	MaxChars int
	// System, when set, is sent as a system message before the
	// meta-prompt.
	System string
	// Languages are drawn from, one per request, for a template that uses
	// {{.Language}} (prompts.CodeLanguages when empty); Fixing lets half
	// of the draws be fixing tasks for a template that uses {{.Fixing}}.
	Languages []string
	Fixing    bool
	// Topics and Openings, when set, replace prompts.Topics(Domain) and
	// prompts.Openings() as the draws of {{.Topic}} and {{.Opening}}.
	Topics, Openings []string
}

// Message is one chat message.
type Message struct{ Role, Content string }

// Request is what is sent to the generator for one attempt at one slot.
type Request struct {
	// Messages is the chat: the task's system message, if any, then one
	// user message with the rendered meta-prompt.
	Messages []Message
	// SeedItemID is the ID of the seed item the request is built on
	// (response generation and quality enhancement); empty for instance
	// generation.
	SeedItemID string
	// Slot is the instance's index (0..Instances-1); Attempt counts from 1.
	Slot, Attempt int

	// Demonstrations are the IDs of the seed items shown as in-context
	// demonstrations, in the order shown.
	Demonstrations []string
	// Topic and Opening are the diversity slots filled, if any.
	Topic, Opening string
	// Language is the programming language drawn, if any, and Fixing
	// whether the task drawn is a fixing task.
	Language string
	Fixing   bool
}

// Completion is the generator's answer to a request.
type Completion struct {
	Text, FinishReason string
}

// Instance is an accepted instruction/response pair.
type Instance struct {
	Instruction, Response string
}

// Validate reports whether the task is complete and consistent.
func (t *Task) Validate() error {
	if t == nil {
		return errors.New("generation: nil task")
	}
	if !slices.Contains([]string{DomainMath, DomainCode, DomainInstruction}, t.Domain) {
		return fmt.Errorf("generation: unknown domain %q", t.Domain)
	}
	if !slices.Contains([]string{MethodInstance, MethodResponse, MethodQuality}, t.Method) {
		return fmt.Errorf("generation: unknown method %q", t.Method)
	}
	if !slices.Contains([]string{VariantFreeForm, VariantJSON, VariantFile}, t.Variant) {
		return fmt.Errorf("generation: unknown variant %q", t.Variant)
	}
	if t.Template == nil {
		return errors.New("generation: task has no template")
	}
	if len(t.Seeds) == 0 {
		return errors.New("generation: task has no seed data")
	}
	if t.Instances <= 0 {
		return fmt.Errorf("generation: task wants %d instances", t.Instances)
	}
	return nil
}

// Request builds the request for slot (0..Instances-1) and attempt (1, 2,
// ...). The same task, slot and attempt always give the same request,
// whatever the order of calls or their concurrency.
//
// Instance generation shows NumDemonstrations seed items drawn without
// replacement, a topic from prompts.Topics and, where the template asks
// for one (instruction following), an opening from prompts.Openings.
// Response generation gives the instruction of Seeds[slot%len(Seeds)];
// quality enhancement gives its instruction and response.
func (t *Task) Request(slot, attempt int) (Request, error) {
	if err := t.Validate(); err != nil {
		return Request{}, err
	}
	if slot < 0 || slot >= t.Instances {
		return Request{}, fmt.Errorf("generation: slot %d out of range [0, %d)", slot, t.Instances)
	}
	if attempt < 1 {
		return Request{}, fmt.Errorf("generation: attempt %d: attempts count from 1", attempt)
	}
	req := Request{Slot: slot, Attempt: attempt}
	var in prompts.Input
	switch t.Method {
	case MethodResponse:
		item := t.Seeds[slot%len(t.Seeds)]
		req.SeedItemID = item.ID
		in.Instruction = item.Instruction
	case MethodQuality:
		item := t.Seeds[slot%len(t.Seeds)]
		req.SeedItemID = item.ID
		in.Instruction, in.Response = item.Instruction, item.Response
	}

	// The random slots are filled for whatever the template uses, always
	// in the same order, so a user template gets them too.
	fields := t.Template.Fields()
	rng := t.rng(slot, attempt)
	if slices.Contains(fields, "Demonstrations") {
		for _, i := range sample(rng, len(t.Seeds), min(NumDemonstrations, len(t.Seeds))) {
			it := t.Seeds[i]
			in.Demonstrations = append(in.Demonstrations, prompts.Example{Instruction: it.Instruction, Response: it.Response})
			req.Demonstrations = append(req.Demonstrations, it.ID)
		}
	}
	if slices.Contains(fields, "Topic") {
		topics := t.Topics
		if len(topics) == 0 {
			topics = prompts.Topics(t.Domain)
		}
		if len(topics) > 0 {
			in.Topic = topics[rng.IntN(len(topics))]
			req.Topic = in.Topic
		}
	}
	if slices.Contains(fields, "Opening") {
		openings := t.Openings
		if len(openings) == 0 {
			openings = prompts.Openings()
		}
		in.Opening = openings[rng.IntN(len(openings))]
		req.Opening = in.Opening
	}

	// Drawn after the slots above, so that a template without them gets
	// the same demonstrations, topics and openings as before.
	if slices.Contains(fields, "Language") {
		langs := t.Languages
		if len(langs) == 0 {
			langs = prompts.CodeLanguages()
		}
		in.Language = langs[rng.IntN(len(langs))]
		req.Language = in.Language
	}
	if t.Fixing && slices.Contains(fields, "Fixing") {
		in.Fixing = rng.IntN(2) == 1
		req.Fixing = in.Fixing
	}

	text, err := t.Template.Render(in)
	if err != nil {
		return Request{}, fmt.Errorf("generation: slot %d attempt %d: %w", slot, attempt, err)
	}
	if t.System != "" {
		req.Messages = append(req.Messages, Message{Role: "system", Content: t.System})
	}
	req.Messages = append(req.Messages, Message{Role: "user", Content: text})
	return req, nil
}

// rng returns the generator for one (slot, attempt): a PCG whose two state
// words are mixes of the cell's seed and of (slot, attempt).
func (t *Task) rng(slot, attempt int) *rand.Rand {
	s1 := mix64(uint64(t.Seed) ^ 0x6a09e667f3bcc908)
	s2 := mix64(mix64(uint64(slot)) ^ uint64(attempt))
	return rand.New(rand.NewPCG(s1, s2))
}

// mix64 is SplitMix64's finaliser: a bijection that spreads every input bit
// over the whole word.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// sample returns k distinct indices of [0, n) in random order (k <= n),
// without building a permutation of n: k is small and n may be large.
func sample(rng *rand.Rand, n, k int) []int {
	out := make([]int, 0, k)
	// Floyd's algorithm gives a uniform k-subset; a shuffle then makes its
	// order uniform too.
	for j := n - k; j < n; j++ {
		v := rng.IntN(j + 1)
		if slices.Contains(out, v) {
			v = j
		}
		out = append(out, v)
	}
	rng.Shuffle(len(out), func(a, b int) { out[a], out[b] = out[b], out[a] })
	return out
}

// seedItem returns the seed item a response-generation or
// quality-enhancement request was built on, checking that the request
// belongs to the task.
func (t *Task) seedItem(req Request) (SeedItem, error) {
	if req.Slot < 0 || req.Slot >= t.Instances {
		return SeedItem{}, fmt.Errorf("generation: slot %d out of range [0, %d)", req.Slot, t.Instances)
	}
	item := t.Seeds[req.Slot%len(t.Seeds)]
	if item.ID != req.SeedItemID {
		return SeedItem{}, fmt.Errorf("generation: request for slot %d names seed item %q, the task has %q there", req.Slot, req.SeedItemID, item.ID)
	}
	return item, nil
}

// jsonFormat reports whether completions are expected as a JSON object.
func (t *Task) jsonFormat() bool {
	switch t.Variant {
	case VariantJSON:
		return true
	case VariantFreeForm:
		return false
	}
	text := t.Template.Text
	answer := markerOutput
	if t.Method == MethodQuality {
		answer = markerRevisedAnswer
	}
	return strings.Contains(text, `"response"`) && !strings.Contains(text, answer)
}
