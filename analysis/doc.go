// Package analysis turns benchmark scores into AgoraBench's metric,
// Performance Gap Recovered (PGR), tables of it, and the report's
// statistics: ordinary least squares (SimpleOLS, MultipleOLS), principal
// components of standardised features (NewPCA), the cost Pareto frontier
// (Frontier, Cheapest), and the whole report of a Dataset (Analyse), read
// from agora's state by the cli or from results files (ReadResults).
// docs/analysis.md defines every number precisely enough to recompute it.
//
// # Formulas
//
// Scores are percentages, as package harness returns them. For a benchmark
// B, with S_Ø the base model, S_ref the reference model and S_G the base
// model trained on generator G's data for a setting:
//
//	PGR_B(G) = 100 × (score_B(S_G) − score_B(S_Ø)) / (score_B(S_ref) − score_B(S_Ø))
//
// 0 means the student is no better than the base model, 100 that it closes
// the whole gap to the reference; below 0 and above 100 are possible and
// kept. S_Ø and S_ref are evaluated once per benchmark and shared by every
// generator. Worked example, with MATH scores from the AgoraBench paper
// (Kim et al., 2024, arXiv:2412.03679): base 19.84, student 28.08,
// reference 34.60 → 100 × 8.24 / 14.76 = 55.826… ≈ 55.8.
//
// A setting (a domain × a generation method, e.g. math-ig) is scored on
// its domain's benchmarks B_s (math: GSM8K and MATH):
//
//	PGR_s(G) = (1 / |B_s|) × Σ_{B ∈ B_s} PGR_B(G)
//
// A generator's AgoraBench score is the mean over the table's settings S
// (the nine built-in ones for the paper's score):
//
//	Score(G) = (1 / |S|) × Σ_{s ∈ S} PGR_s(G)
//
// Given what the generator's data cost, Cost(G) in US dollars (its total
// over the table's settings):
//
//	PGRPerDollar(G) = Score(G) / Cost(G)      [PGR points per dollar]
//
// # Degenerate inputs
//
// PGR is undefined when the reference scores the same as the base model
// (a zero gap) or when a score is NaN or infinite: PGR and PerDollar
// return an error saying which. In a Table nothing is ever NaN and nothing
// missing is ever zero: a cell is a Value, either a number or missing with
// the reason (no student score; zero gap on B; …). A mean is missing when
// any of its parts is — a setting's PGR with one benchmark missing, or a
// generator's score with one setting missing, is not the mean of the rest,
// which would not be comparable with a complete row. A reference scoring
// below the base model gives a defined PGR whose sign is inverted (a
// student better than the base gets a negative PGR); the table computes it
// and adds a warning.
package analysis
