// Package generation turns a generate step's task into requests for a
// generator model, and the model's completions into accepted instances or
// rejections.
//
// A [Task] describes one grid cell of one setting: its domain, generation
// method and prompt variant, the meta-prompt, the cell's seed, the seed data
// and the number of instances wanted. The engine asks the task for the
// request of each slot (0..Instances-1) and attempt (1, 2, ...), sends it,
// and hands the completion to [Task.Result], which parses and validates it.
// A completion that fails is reported as a [*Rejection] with a short,
// machine-friendly reason (one of the Reason constants), and the slot is
// retried with the next attempt.
//
// # Determinism
//
// [Task.Request] is a pure function of the task and (slot, attempt): the
// random choices (demonstrations, topic, opening) come from a PCG generator
// seeded from the cell's seed, the slot and the attempt, so the same request
// is rebuilt after a crash, in any order and at any concurrency, and a
// retried attempt gets fresh demonstrations and a fresh topic. The
// reference code also mixes a run's own accepted instances into later
// demonstrations; that would make a request depend on the order in which
// earlier slots completed, so here demonstrations always come from the seed
// data.
//
// # Parsing
//
// Free-form completions are parsed around the markers the built-in
// meta-prompts ask for (see package prompts): instance generation
// "INPUT: ... OUTPUT: ... [END]", response generation "... [END]", quality
// enhancement "Revised Question: ... Revised Answer: ... [END]". Because
// every free-form prompt ends with an open slot, the completion may or may
// not repeat the slot's marker; a run of the same marker repeated with only
// white space between counts once, and the last question/answer pair wins.
// JSON completions must be exactly one JSON object (a surrounding ```json
// fence is tolerated) with string values for "instruction" and "response";
// in response generation the instruction is always the seed's, whatever the
// model echoed. A user template (variant "file") is parsed as JSON when its
// text asks for the "response" key and does not use the method's free-form
// answer marker, and as free-form otherwise.
//
// # Validation
//
// An accepted instance has a non-empty instruction and response, fits the
// student's context (len(instruction)+len(response) <= MaxChars), and
// carries no leaked marker (INPUT:, OUTPUT:, [END], Revised Question:,
// Revised Answer:, unless the seed item given to the model already contains
// it) and no leaked template reference such as "{{.Topic}}". Plain "{{" and
// "}}" are not rejected: they are everywhere in LaTeX, Python format strings
// and Jinja. Math responses must end with exactly one [RESULT] ... [/RESULT];
// code responses must be a single fenced code block with balanced fences and
// no "example usage", "test cases" or "explanation" prose outside it.
package generation
