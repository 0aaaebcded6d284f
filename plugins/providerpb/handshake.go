package providerpb

// The go-plugin handshake shared by agora and its provider plugins.
const (
	// ProtocolVersion is the version of provider.proto this agora speaks:
	// the APP-PROTOCOL-VERSION of the handshake line. It changes only
	// when the protocol changes incompatibly.
	ProtocolVersion = 1
	// CookieKey and CookieValue are the environment variable agora sets
	// when it starts a plugin; a plugin started any other way refuses to
	// run (it is not meant to be run by hand).
	CookieKey   = "AGORA_PLUGIN"
	CookieValue = "provider-c1d6f4a2"
	// PluginName is the name of the provider in go-plugin's plugin set.
	PluginName = "provider"
)
