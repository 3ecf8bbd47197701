//! Swagger UI's stylesheet and script for `/docs`, taken from the swagger-ui-dist crate.
//! Its router is the only way it hands out the files it embeds, and a binary that links the
//! router links all of them (source maps too, which no page asks for), so the two
//! files the page loads are read through it here, once, and `meta.rs` embeds just those.

use std::path::PathBuf;

use tower::ServiceExt;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let routes = swagger_ui_dist::generate_routes(swagger_ui_dist::ApiDefinition {
        uri_prefix: "/docs",
        api_definition: swagger_ui_dist::OpenApiSource::Uri("openapi.json"),
        title: Some("Bookshelf API"),
    });
    for name in ["swagger-ui.css", "swagger-ui-bundle.js"] {
        let request = http::Request::get(format!("/docs/{name}"))
            .body(axum::body::Body::empty())
            .expect("a valid request");
        let response =
            futures::executor::block_on(routes.clone().oneshot(request)).expect("the router is infallible");
        assert!(response.status().is_success(), "swagger-ui-dist serves no {name}");
        let bytes = futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .expect("a static body");
        std::fs::write(out.join(name), bytes).expect("writing to OUT_DIR");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
