package main

import (
	"crypto/tls"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// certFiles serves the certificate in a pair of PEM files and reloads it
// when they change, so that a renewed certificate (certbot, cert-manager)
// is picked up without a restart.
type certFiles struct {
	certFile, keyFile string
	log               *zap.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

// recheck is how often the files' modification time is looked at.
const recheck = 10 * time.Second

func newCertFiles(certFile, keyFile string, log *zap.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certFiles) load() error {
	fi, err := os.Stat(c.certFile)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cert, c.mtime = &cert, fi.ModTime()
	return nil
}

func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) > recheck {
		c.checked = now
		if fi, err := os.Stat(c.certFile); err == nil && !fi.ModTime().Equal(c.mtime) {
			// A half-written pair fails to load; the old one serves until the next check.
			if err := c.load(); err != nil {
				c.log.Warn("reloading the TLS certificate", zap.Error(err))
			} else {
				c.log.Info("TLS certificate reloaded", zap.String("file", c.certFile))
			}
		}
	}
	return c.cert, nil
}
