package rtc

import (
	"github.com/pion/logging"
	"go.uber.org/zap"
)

// zapLoggerFactory routes Pion's internal logs through zap so that all the
// server's output is structured. Pion's info is chatty (every state change),
// so it goes to debug, and Pion's trace is dropped.
type zapLoggerFactory struct{ log *zap.Logger }

// PionLoggerFactory is that adapter for Pion components built outside this
// package (the TURN server).
func PionLoggerFactory(log *zap.Logger) logging.LoggerFactory { return zapLoggerFactory{log} }

func (f zapLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.Named(scope).Sugar()}
}

type pionLogger struct{ s *zap.SugaredLogger }

func (l pionLogger) Trace(msg string)                  {}
func (l pionLogger) Tracef(format string, args ...any) {}
func (l pionLogger) Debug(msg string)                  { l.s.Debug(msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.s.Debugf(format, args...) }
func (l pionLogger) Info(msg string)                   { l.s.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.s.Debugf(format, args...) }
func (l pionLogger) Warn(msg string)                   { l.s.Warn(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.s.Warnf(format, args...) }
func (l pionLogger) Error(msg string)                  { l.s.Error(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.s.Errorf(format, args...) }
