package relay

import (
	"github.com/pion/logging"
	"go.uber.org/zap"
)

// zapLoggerFactory routes pion/turn's logs through zap. Pion's info is
// per-request chatter, so it goes to debug.
type zapLoggerFactory struct{ log *zap.Logger }

func (f zapLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.Named(scope).Sugar()}
}

type pionLogger struct{ s *zap.SugaredLogger }

func (pionLogger) Trace(string)                        {}
func (pionLogger) Tracef(string, ...any)               {}
func (l pionLogger) Debug(msg string)                  { l.s.Debug(msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.s.Debugf(format, args...) }
func (l pionLogger) Info(msg string)                   { l.s.Debug(msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.s.Debugf(format, args...) }
func (l pionLogger) Warn(msg string)                   { l.s.Warn(msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.s.Warnf(format, args...) }
func (l pionLogger) Error(msg string)                  { l.s.Error(msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.s.Errorf(format, args...) }
