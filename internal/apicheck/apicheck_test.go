package apicheck

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// A document whose answer is an allOf of two objects: each member lists
// only its share of the fields, so neither may be closed on its own; the
// plain object beside them still is.
const allOfDoc = `{
 "openapi": "3.0.3",
 "info": {"title": "t", "version": "1"},
 "paths": {
  "/thing": {"get": {"operationId": "getThing", "responses": {
   "200": {"description": "a thing", "content": {"application/json": {"schema": {"allOf": [
     {"$ref": "#/components/schemas/Named"},
     {"type": "object", "properties": {"size": {"type": "integer"}}}
   ]}}}}}}},
  "/named": {"get": {"operationId": "getNamed", "responses": {
   "200": {"description": "a name", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Plain"}}}}}}}
 },
 "components": {"schemas": {
  "Named": {"type": "object", "properties": {"name": {"type": "string"}}},
  "Plain": {"type": "object", "properties": {"name": {"type": "string"}}}
 }}
}`

func TestAllOfMembersStayOpenAndPlainObjectsAreClosed(t *testing.T) {
	c, err := New([]byte(allOfDoc))
	if err != nil {
		t.Fatal(err)
	}
	json := http.Header{"Content-Type": {"application/json"}}
	if err := c.Check(httptest.NewRequest("GET", "/thing", nil), 200, json, []byte(`{"name":"a","size":3}`)); err != nil {
		t.Errorf("an answer with both members' fields: %v", err)
	}
	if err := c.Check(httptest.NewRequest("GET", "/named", nil), 200, json, []byte(`{"name":"a","colour":"blue"}`)); err == nil {
		t.Error("a field the plain object does not name passed")
	}
}
