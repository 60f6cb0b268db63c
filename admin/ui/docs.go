package ui

import (
	"net/http"
	"strings"

	swaggerfiles "github.com/swaggo/files/v2"
)

// The API docs are Swagger UI, embedded by github.com/swaggo/files/v2, so
// they work offline. They read the OpenAPI document from
// /api/docs/openapi.json, which needs a UI session like any page; "Try it
// out" calls the API itself, which needs a bearer token (Authorize).

func (u *UI) docsIndex(w http.ResponseWriter, r *http.Request, _ *call) {
	http.ServeFileFS(w, r, staticFS, "static/docs.html")
}

func (u *UI) docsSpec(w http.ResponseWriter, r *http.Request, _ *call) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(u.adm.OpenAPIJSON())
}

// docsInit replaces Swagger UI's initializer, which points at a demo API.
func (u *UI) docsInit(w http.ResponseWriter, r *http.Request, _ *call) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	http.ServeFileFS(w, r, staticFS, "static/swagger-initializer.js")
}

var docsAssets = http.FileServerFS(swaggerfiles.FS)

func (u *UI) docsAsset(w http.ResponseWriter, r *http.Request, _ *call) {
	name := strings.TrimPrefix(r.URL.Path, DocsPrefix)
	if name == "index.html" || strings.HasSuffix(name, ".map") {
		http.NotFound(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + name
	w.Header().Set("Cache-Control", "private, max-age=3600")
	docsAssets.ServeHTTP(w, r2)
}
