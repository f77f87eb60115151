package webhooks

import _ "embed"

// openAPIDocument is the OpenAPI 3.0 description of every route, served at
// /v1/openapi.json. TestOpenAPIMatchesRoutes keeps it and the router in step.
//
//go:embed openapi.json
var openAPIDocument []byte
