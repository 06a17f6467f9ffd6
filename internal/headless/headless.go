// Package headless holds the Chromium command line that the browser tests
// and the Chrome load mode share: headless, fake camera and microphone,
// WebRTC over loopback, no throttling of background tabs, and no network
// but the SFU's own host.
package headless

import (
	"os"
	"os/exec"
	"strconv"

	"github.com/chromedp/chromedp"
)

// Options returns chromedp's allocator options for Chromium at bin, with its
// profile in dataDir and the fake camera at fps frames per second (0: its
// default). Chromedp's DefaultExecAllocatorOptions set disable-features and
// enable-features of their own, so the list starts empty.
func Options(bin, dataDir string, fps int) []chromedp.ExecAllocatorOption {
	camera := any(true)
	if fps > 0 {
		camera = "fps=" + strconv.Itoa(fps)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		// Crashpad handlers cannot be turned off and keep their database in
		// $XDG_CONFIG_HOME; this keeps $HOME clean and lets cleanup find them.
		chromedp.Env("XDG_CONFIG_HOME=" + dataDir),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true), // these machines run as root
		chromedp.Flag("user-data-dir", dataDir),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", camera),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		// Keep the browser off the real network; only the local SFU resolves.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		// mDNS candidates never resolve in a sandboxed network.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// Tabs that are not in front must keep decoding video and firing timers.
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
	for _, f := range []string{"disable-gpu", "disable-quic", "no-first-run", "disable-background-networking",
		"disable-component-update", "disable-sync", "mute-audio"} {
		opts = append(opts, chromedp.Flag(f, true))
	}
	return opts
}

// Binary reports where Chromium is. $CHROMIUM_BIN wins when set, so that a
// misconfigured CI fails instead of silently using another browser.
func Binary() (string, bool) {
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		p, err := exec.LookPath(p)
		return p, err == nil
	}
	// The Debian /usr/bin/chromium is a wrapper script that adds flags of its
	// own, so the real binary comes first.
	for _, name := range []string{"/usr/lib/chromium/chromium", "/usr/bin/chromium", "chromium", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}
