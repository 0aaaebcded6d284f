package state_test

import (
	"github.com/agorabench/agora/compiler"
	"github.com/agorabench/agora/state"
)

var _ compiler.Recorded = (*state.Store)(nil)
