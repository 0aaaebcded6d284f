package providerpb

// The go-plugin handshake shared by agora and its provider plugins.
const (
	// ProtocolVersion is the newest version of provider.proto this agora
	// speaks: the APP-PROTOCOL-VERSION of the handshake line of a plugin
	// that speaks it too. It changes when the protocol gains calls (a new
	// version) or changes incompatibly.
	ProtocolVersion = 2
	// BatchVersion is the first version with the batch calls.
	BatchVersion = 2
	// CookieKey and CookieValue are the environment variable agora sets
	// when it starts a plugin; a plugin started any other way refuses to
	// run (it is not meant to be run by hand).
	CookieKey   = "AGORA_PLUGIN"
	CookieValue = "provider-c1d6f4a2"
	// PluginName is the name of the provider in go-plugin's plugin set.
	PluginName = "provider"
)

// ProtocolVersions are the versions this agora offers a plugin, oldest
// first; the plugin picks the newest it speaks. Version 1 has Describe,
// Complete, CountTokens and Embed; version 2 adds the batch calls.
var ProtocolVersions = []int{1, 2}
