//go:build race

package api_test

// raceEnabled: the tests are built with -race. Such builds allocate more
// (sync.Pool drops items at random under the race detector, so pooled
// buffers are allocated anew): allocation bounds are checked without it.
const raceEnabled = true
