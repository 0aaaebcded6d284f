// Package spec owns agora's experiment language: the CUE schema (embedded
// in the binary), the nine built-in AgoraBench settings and six benchmarks,
// loading a user's file, and turning every problem in it into a positioned
// diagnostic. It knows nothing of plans or executors.
package spec
