// Package prompts holds agora's built-in meta-prompts: the texts sent to a
// generator model to produce synthetic training data, one for each
// domain (math, code, instruction_following), generation method
// (instance_generation, response_generation, quality_enhancement) and
// output variant (free-form, json).
//
// The prompts are this project's own wording of the AgoraBench protocol.
// Free-form prompts are plain text with four sections (general guidelines,
// input requirements, output requirements, format requirements), followed,
// for instance generation, by demonstration blocks, and end with an open
// slot for the generator to fill:
//
//   - instance generation ends with an "INPUT:" line; the completion is
//     "<instruction> OUTPUT: <response> [END]" (a completion may or may
//     not repeat the leading "INPUT:" marker);
//   - response generation ends with an "OUTPUT:" line; the completion is
//     "<response> [END]";
//   - quality enhancement ends with a "Revised Question:" line; the
//     completion is "<question> Revised Answer: <answer> [END]" (again the
//     leading marker may or may not be repeated).
//
// Json prompts ask for exactly one JSON object with the string keys
// "instruction" and "response", and show their inputs (demonstrations,
// the fixed instruction, the pair to revise) in that same JSON shape.
//
// Math responses must end with the final answer wrapped as
// "[RESULT] ... [/RESULT]"; code responses are a single fenced code block
// without tests or prose, except in code quality enhancement, whose revised
// answer ends with assertion tests.
//
// Templates are Go text/template texts over [Input]. Besides the standard
// template functions they may call json, which writes its argument as a JSON
// value (for a string: a quoted, escaped JSON string). Built-in templates are
// embedded in the binary and parsed lazily, once each; user templates are
// checked by [Parse], which rejects references to fields that [Input] (or,
// inside a range over .Demonstrations, [Example]) does not have.
package prompts
