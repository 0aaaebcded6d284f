//go:build !race

package api_test

// raceEnabled: see race_test.go.
const raceEnabled = false
