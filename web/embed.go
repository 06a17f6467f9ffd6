// Package web holds the browser client of Switchboard: a single page that
// joins a room over the signaling protocol in docs/protocol.md, publishes the
// camera and microphone, and shows every other participant as a tile. It is
// plain HTML, CSS and an ES module with no build step, so the files embedded
// here are exactly the files the browser receives.
package web

import "embed"

// FS holds index.html, the scripts and style.css at its root; the server
// serves it at "/".
//
//go:embed index.html *.js style.css
var FS embed.FS
