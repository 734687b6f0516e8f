package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// publicOperations are the operations that take no bearer token.
var publicOperations = map[string]bool{
	"CoreService_SignIn":       true,
	"CoreService_RefreshToken": true,
	"CoreService_SignOut":      true,
}

const apiDescription = "REST API of iotplatform (transcoded from the Connect/gRPC services in proto/). " +
	"Sign in with POST /api/users/signin, then send the token as `Authorization: Bearer <token>`. " +
	"The same operations are served over Connect, gRPC and gRPC-Web; devices push readings on the " +
	"ingest listeners (HTTP :8083, WebSocket :8765, MQTT :1883), not here."

// searchPath is the consumer search proxy (services/query.SearchPath),
// served beside the transcoder, so protoc-gen-openapiv2 does not see it.
const searchPath = "/api/consumers/consume/{sensor_id}/_search"

// convertOpenAPI turns protoc-gen-openapiv2's Swagger 2.0 document into an
// OpenAPI 3.1 document: components/schemas, requestBody, response content,
// the bearer security scheme, a real title and the platform version, and
// the consumer search proxy path.
func convertOpenAPI(swagger []byte, version string) ([]byte, error) {
	var in struct {
		Tags        []any                                `json:"tags"`
		Paths       map[string]map[string]map[string]any `json:"paths"`
		Definitions map[string]any                       `json:"definitions"`
	}
	if err := json.Unmarshal(swagger, &in); err != nil {
		return nil, err
	}
	paths := map[string]any{}
	for p, ops := range in.Paths {
		item := map[string]any{}
		for method, op := range ops {
			o, err := convertOperation(op)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, p, err)
			}
			item[method] = o
		}
		paths[p] = item
	}
	if _, ok := paths[searchPath]; ok {
		return nil, fmt.Errorf("%s is in the generated document: drop it from genpost", searchPath)
	}
	paths[searchPath] = searchItem()
	schemas := map[string]any{}
	for name, s := range in.Definitions {
		schemas[name] = rewriteRefs(s)
	}
	schemas["SearchError"] = map[string]any{
		"type":        "object",
		"description": "Error of the search proxy.",
		"properties": map[string]any{
			"code":    map[string]any{"type": "string", "description": "Connect error code, e.g. invalid_argument."},
			"message": map[string]any{"type": "string"},
		},
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "iotplatform API",
			"version":     version,
			"description": apiDescription,
			"license":     map[string]any{"name": "Apache-2.0", "identifier": "Apache-2.0"},
		},
		"servers":  []any{map[string]any{"url": "/", "description": "this server"}},
		"tags":     in.Tags,
		"security": []any{map[string]any{"bearerAuth": []any{}}},
		"paths":    paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearerAuth": map[string]any{
					"type":         "http",
					"scheme":       "bearer",
					"bearerFormat": "JWT",
					"description":  "A user token from POST /api/users/signin, or a consumer or device token.",
				},
			},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func convertOperation(op map[string]any) (map[string]any, error) {
	out := map[string]any{}
	for _, k := range []string{"summary", "description", "operationId", "tags", "deprecated"} {
		if v, ok := op[k]; ok {
			out[k] = v
		}
	}
	if id, _ := op["operationId"].(string); publicOperations[id] {
		out["security"] = []any{}
	}
	params, _ := op["parameters"].([]any)
	var outParams []any
	for _, raw := range params {
		p, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("parameter is %T", raw)
		}
		if p["in"] == "body" {
			body := map[string]any{
				"required": p["required"] == true,
				"content":  map[string]any{"application/json": map[string]any{"schema": rewriteRefs(p["schema"])}},
			}
			if d, ok := p["description"]; ok {
				body["description"] = d
			}
			out["requestBody"] = body
			continue
		}
		q := map[string]any{"name": p["name"], "in": p["in"]}
		if d, ok := p["description"]; ok {
			q["description"] = d
		}
		if p["required"] == true || p["in"] == "path" {
			q["required"] = true
		}
		schema := map[string]any{}
		for _, k := range []string{"type", "format", "enum", "default", "items"} {
			if v, ok := p[k]; ok {
				schema[k] = rewriteRefs(v)
			}
		}
		if p["collectionFormat"] == "multi" {
			q["style"], q["explode"] = "form", true
		}
		q["schema"] = schema
		outParams = append(outParams, q)
	}
	if outParams != nil {
		out["parameters"] = outParams
	}
	resps, _ := op["responses"].(map[string]any)
	outResps := map[string]any{}
	for code, raw := range resps {
		r, _ := raw.(map[string]any)
		o := map[string]any{"description": r["description"]}
		if s, ok := r["schema"]; ok {
			o["content"] = map[string]any{"application/json": map[string]any{"schema": rewriteRefs(s)}}
		}
		outResps[code] = o
	}
	out["responses"] = outResps
	return out, nil
}

// rewriteRefs copies v with every Swagger 2.0 "#/definitions/" reference
// pointing at "#/components/schemas/".
func rewriteRefs(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				out[k] = strings.Replace(s, "#/definitions/", "#/components/schemas/", 1)
				continue
			}
			out[k] = rewriteRefs(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = rewriteRefs(x)
		}
		return out
	default:
		return v
	}
}

func searchItem() map[string]any {
	op := func(id, summary string, body bool) map[string]any {
		o := map[string]any{
			"operationId": id,
			"summary":     summary,
			"description": "The consumer search proxy (the original platform's Elasticsearch auth proxy): " +
				"the OpenSearch query DSL runs restricted to the readings of one sensor the caller may read " +
				"(a consumer's granted sensor, a user's own sensor). Needs the OpenSearch store; the embedded " +
				"store answers 501. Bodies are limited to 1 MiB.",
			"tags": []any{"QueryService"},
			"parameters": []any{map[string]any{
				"name": "sensor_id", "in": "path", "required": true,
				"description": "sensor_id of the sensor to search.",
				"schema":      map[string]any{"type": "string", "format": "int64"},
			}},
			"responses": map[string]any{
				"200": map[string]any{
					"description": "The OpenSearch search response.",
					"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}},
				},
				"400": errResp("The sensor id or the query is invalid (e.g. it names other indices)."),
				"403": errResp("The caller may not read the sensor."),
				"413": errResp("The body is larger than 1 MiB."),
				"501": errResp("The store has no search (the embedded store)."),
				"502": errResp("The search backend could not answer."),
			},
		}
		if body {
			o["requestBody"] = map[string]any{
				"description": "OpenSearch query DSL, e.g. {\"query\": {\"range\": {\"value\": {\"gte\": 10}}}}.",
				"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}},
			}
		}
		return o
	}
	return map[string]any{
		"post": op("ConsumerSearch", "Search the readings of one sensor with the OpenSearch query DSL.", true),
		"get":  op("ConsumerSearchGet", "Search the readings of one sensor (match all, or a query DSL body).", false),
	}
}

func errResp(desc string) map[string]any {
	return map[string]any{
		"description": desc,
		"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{
			"$ref": "#/components/schemas/SearchError"}}},
	}
}
