// Command agora-provider-anthropic is agora's provider plugin for
// Anthropic's Messages API, and its Message Batches (protocol version
// 2). agora starts it; run by hand it exits.
// Configure it with $ANTHROPIC_API_KEY and, for a proxy or a stand-in,
// $ANTHROPIC_BASE_URL.
package main

import (
	"github.com/agorabench/agora/plugins/anthropic"
	"github.com/agorabench/agora/plugins/sdk"
)

func main() { sdk.Serve(anthropic.FromEnv()) }
