package controllers

// testExternal is what the envtest manager uses to reach Ollama and Qdrant; tests point it at
// a real Ollama and the Qdrant double with SetEndpoints.
var testExternal = &ExternalClients{SkipQdrantVersionCheck: true}
