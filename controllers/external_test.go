package controllers

// testExternal is what the envtest manager uses to reach Ollama and Qdrant.
var testExternal *ExternalClients
