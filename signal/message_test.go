package signal

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// joinJSON builds a join message with room and name encoded by encoding/json,
// so that control characters and multibyte text reach Decode intact.
func joinJSON(room, name string) string {
	b, err := json.Marshal(map[string]string{"type": "join", "room": room, "name": name})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func candidateJSON(target, candidate string) string {
	b, err := json.Marshal(map[string]any{
		"type":      "candidate",
		"target":    target,
		"candidate": map[string]any{"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0},
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestDecode(t *testing.T) {
	const validCandidate = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
	tests := []struct {
		name     string
		in       string
		wantCode string // "" means the message is valid
		check    func(t *testing.T, m Message)
	}{
		// Every client message type.
		{name: "join", in: `{"type":"join","room":"standup","name":"Alice"}`, check: func(t *testing.T, m Message) {
			if m.Type != TypeJoin || m.Room != "standup" || m.Name != "Alice" {
				t.Errorf("got %+v", m)
			}
		}},
		{name: "offer publisher", in: `{"type":"offer","target":"publisher","sdp":"v=0"}`, check: func(t *testing.T, m Message) {
			if m.Type != TypeOffer || m.Target != TargetPublisher || m.SDP != "v=0" {
				t.Errorf("got %+v", m)
			}
		}},
		{name: "answer subscriber", in: `{"type":"answer","target":"subscriber","sdp":"v=0"}`, check: func(t *testing.T, m Message) {
			if m.Type != TypeAnswer || m.Target != TargetSubscriber || m.SDP != "v=0" {
				t.Errorf("got %+v", m)
			}
		}},
		{name: "candidate publisher", in: candidateJSON("publisher", validCandidate), check: func(t *testing.T, m Message) {
			if m.Type != TypeCandidate || m.Target != TargetPublisher || m.Candidate == nil || m.Candidate.Candidate != validCandidate {
				t.Errorf("got %+v", m)
			}
			if m.Candidate.SDPMid == nil || *m.Candidate.SDPMid != "0" || m.Candidate.SDPMLineIndex == nil || *m.Candidate.SDPMLineIndex != 0 {
				t.Errorf("sdpMid/sdpMLineIndex not decoded: %+v", *m.Candidate)
			}
		}},
		{name: "candidate subscriber", in: candidateJSON("subscriber", validCandidate)},
		// The protocol defines an empty candidate string as end-of-candidates.
		{name: "candidate end of candidates", in: candidateJSON("publisher", "")},
		{name: "candidate exactly 1024 bytes", in: candidateJSON("publisher", strings.Repeat("a", 1024))},
		{name: "leave", in: `{"type":"leave"}`},
		{name: "ping", in: `{"type":"ping"}`},
		{name: "surrounding whitespace", in: " \n\t{\"type\":\"ping\"}\r\n "},
		{name: "unknown fields ignored", in: `{"type":"ping","extra":{"nested":[1,2,3]},"n":null}`},

		// Room names.
		{name: "room 1 char", in: joinJSON("a", "Alice")},
		{name: "room 64 chars", in: joinJSON(strings.Repeat("r", 64), "Alice")},
		{name: "room all allowed chars", in: joinJSON("AZaz09_-.", "Alice")},
		{name: "room 65 chars", in: joinJSON(strings.Repeat("r", 65), "Alice"), wantCode: CodeBadMessage},
		{name: "room empty", in: joinJSON("", "Alice"), wantCode: CodeBadMessage},
		{name: "room missing", in: `{"type":"join","name":"Alice"}`, wantCode: CodeBadMessage},
		{name: "room space", in: joinJSON("stand up", "Alice"), wantCode: CodeBadMessage},
		{name: "room slash", in: joinJSON("a/b", "Alice"), wantCode: CodeBadMessage},
		// A trailing newline must not slip past the end anchor of the pattern.
		{name: "room trailing newline", in: joinJSON("standup\n", "Alice"), wantCode: CodeBadMessage},
		{name: "room NUL", in: joinJSON("stand\x00up", "Alice"), wantCode: CodeBadMessage},
		{name: "room unicode", in: joinJSON("café", "Alice"), wantCode: CodeBadMessage},
		{name: "room fullwidth digit", in: joinJSON("room１", "Alice"), wantCode: CodeBadMessage},

		// Names: the limit is in characters (runes), not bytes.
		{name: "name 1 rune", in: joinJSON("r", "A")},
		{name: "name 1 multibyte rune", in: joinJSON("r", "😀")},
		{name: "name 64 ascii", in: joinJSON("r", strings.Repeat("n", 64))},
		{name: "name 64 multibyte runes", in: joinJSON("r", strings.Repeat("é", 32)+strings.Repeat("日", 31)+"😀")},
		{name: "name with spaces and punctuation", in: joinJSON("r", `Dr. <b>O'Brien</b> & "Co"`)},
		{name: "name 65 ascii", in: joinJSON("r", strings.Repeat("n", 65)), wantCode: CodeBadMessage},
		{name: "name 65 multibyte runes", in: joinJSON("r", strings.Repeat("日", 65)), wantCode: CodeBadMessage},
		{name: "name empty", in: joinJSON("r", ""), wantCode: CodeBadMessage},
		{name: "name missing", in: `{"type":"join","room":"r"}`, wantCode: CodeBadMessage},
		{name: "name newline", in: joinJSON("r", "Al\nice"), wantCode: CodeBadMessage},
		{name: "name tab", in: joinJSON("r", "Al\tice"), wantCode: CodeBadMessage},
		{name: "name NUL", in: joinJSON("r", "Al\x00ice"), wantCode: CodeBadMessage},
		{name: "name DEL", in: joinJSON("r", "Al\x7fice"), wantCode: CodeBadMessage},
		{name: "name C1 control", in: joinJSON("r", "Al\u0085ice"), wantCode: CodeBadMessage},
		{name: "name bidi override", in: joinJSON("r", "Al\u202eice"), wantCode: CodeBadMessage},
		// Raw bytes, not via json.Marshal, which would replace them with U+FFFD.
		// encoding/json itself replaces invalid UTF-8 in strings with U+FFFD,
		// which is printable, so the raw form is accepted as a replacement
		// character rather than rejected: either way no invalid UTF-8 reaches
		// other clients.
		{name: "name invalid UTF-8", in: "{\"type\":\"join\",\"room\":\"r\",\"name\":\"Al\xffice\"}", check: func(t *testing.T, m Message) {
			if m.Name != "Al\uFFFDice" {
				t.Errorf("decoded name %q, want the invalid byte replaced by U+FFFD", m.Name)
			}
		}},
		{name: "name escaped lone surrogate", in: `{"type":"join","room":"r","name":"Al\ud800ice"}`, check: func(t *testing.T, m Message) {
			if !utf8.ValidString(m.Name) {
				t.Errorf("decoded name %q is not valid UTF-8", m.Name)
			}
		}},

		// Offer and answer.
		{name: "offer target subscriber", in: `{"type":"offer","target":"subscriber","sdp":"v=0"}`, wantCode: CodeBadMessage},
		{name: "offer target missing", in: `{"type":"offer","sdp":"v=0"}`, wantCode: CodeBadMessage},
		{name: "offer sdp missing", in: `{"type":"offer","target":"publisher"}`, wantCode: CodeBadMessage},
		{name: "offer sdp empty", in: `{"type":"offer","target":"publisher","sdp":""}`, wantCode: CodeBadMessage},
		{name: "answer target publisher", in: `{"type":"answer","target":"publisher","sdp":"v=0"}`, wantCode: CodeBadMessage},
		{name: "answer sdp missing", in: `{"type":"answer","target":"subscriber"}`, wantCode: CodeBadMessage},
		{name: "offer sdp wrong type", in: `{"type":"offer","target":"publisher","sdp":{}}`, wantCode: CodeBadMessage},

		// Candidate.
		{name: "candidate bad target", in: candidateJSON("both", validCandidate), wantCode: CodeBadMessage},
		{name: "candidate target missing", in: `{"type":"candidate","candidate":{"candidate":""}}`, wantCode: CodeBadMessage},
		{name: "candidate missing", in: `{"type":"candidate","target":"publisher"}`, wantCode: CodeBadMessage},
		{name: "candidate null", in: `{"type":"candidate","target":"publisher","candidate":null}`, wantCode: CodeBadMessage},
		{name: "candidate string instead of object", in: `{"type":"candidate","target":"publisher","candidate":"candidate:1 1 udp"}`, wantCode: CodeBadMessage},
		{name: "candidate 1025 bytes", in: candidateJSON("publisher", strings.Repeat("a", 1025)), wantCode: CodeBadMessage},
		{name: "candidate negative mline index", in: `{"type":"candidate","target":"publisher","candidate":{"candidate":"","sdpMLineIndex":-1}}`, wantCode: CodeBadMessage},

		// Not a JSON object.
		{name: "not JSON", in: `hello`, wantCode: CodeBadMessage},
		{name: "truncated JSON", in: `{"type":"ping"`, wantCode: CodeBadMessage},
		{name: "trailing garbage", in: `{"type":"ping"} x`, wantCode: CodeBadMessage},
		{name: "empty", in: ``, wantCode: CodeBadMessage},
		{name: "whitespace only", in: " \n ", wantCode: CodeBadMessage},
		{name: "JSON array", in: `[{"type":"ping"}]`, wantCode: CodeBadMessage},
		{name: "JSON string", in: `"ping"`, wantCode: CodeBadMessage},
		{name: "JSON number", in: `42`, wantCode: CodeBadMessage},
		{name: "JSON null", in: `null`, wantCode: CodeBadMessage},
		{name: "room wrong type", in: `{"type":"join","room":5}`, wantCode: CodeBadMessage},
		{name: "name wrong type", in: `{"type":"join","room":"r","name":["Alice"]}`, wantCode: CodeBadMessage},
		{name: "type wrong type", in: `{"type":1}`, wantCode: CodeBadMessage},

		// Type.
		{name: "type missing", in: `{"room":"r"}`, wantCode: CodeUnknownType},
		{name: "type empty", in: `{"type":""}`, wantCode: CodeUnknownType},
		{name: "empty object", in: `{}`, wantCode: CodeUnknownType},
		{name: "type null", in: `{"type":null}`, wantCode: CodeUnknownType},
		{name: "unknown type", in: `{"type":"subscribe"}`, wantCode: CodeUnknownType},
		// Server-to-client types are not valid from a client.
		{name: "server type joined", in: `{"type":"joined"}`, wantCode: CodeUnknownType},
		{name: "server type pong", in: `{"type":"pong"}`, wantCode: CodeUnknownType},
		{name: "server type error", in: `{"type":"error","code":"internal"}`, wantCode: CodeUnknownType},

		// Size.
		{name: "exactly 64 KiB", in: `{"type":"ping","pad":"` + strings.Repeat("x", MaxMessageSize-len(`{"type":"ping","pad":""}`)) + `"}`},
		{name: "64 KiB plus 1", in: `{"type":"ping","pad":"` + strings.Repeat("x", MaxMessageSize+1-len(`{"type":"ping","pad":""}`)) + `"}`, wantCode: CodeTooLarge},
		// Size is checked before anything else, so a huge non-JSON blob is too-large, not bad-message.
		{name: "over 64 KiB not JSON", in: strings.Repeat("x", 100<<10), wantCode: CodeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode([]byte(tc.in))
			if tc.wantCode == "" {
				if err != nil {
					t.Fatalf("Decode(%.80q) = error %v, want success", tc.in, err)
				}
				if tc.check != nil {
					tc.check(t, m)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode(%.80q) = %+v, want error %q", tc.in, m, tc.wantCode)
			}
			if err.Code != tc.wantCode {
				t.Errorf("Decode(%.80q) code = %q (%s), want %q", tc.in, err.Code, err.Message, tc.wantCode)
			}
			if err.Message == "" {
				t.Errorf("Decode(%.80q): error %q has no message", tc.in, err.Code)
			}
			if !utf8.ValidString(err.Message) {
				t.Errorf("Decode(%.80q): message %q is not valid UTF-8", tc.in, err.Message)
			}
		})
	}
}

// The type is echoed back to the client; a long one must not let a client
// make the server produce arbitrarily long error messages.
func TestDecodeUnknownTypeTruncated(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	_, err := Decode([]byte(`{"type":"` + long + `"}`))
	if err == nil || err.Code != CodeUnknownType {
		t.Fatalf("got %v, want %s", err, CodeUnknownType)
	}
	if len(err.Message) > 100 {
		t.Errorf("message is %d bytes, want it truncated: %.120q", len(err.Message), err.Message)
	}
	if !strings.Contains(err.Message, strings.Repeat("x", 32)) {
		t.Errorf("message %q does not show the start of the type", err.Message)
	}
	if !strings.Contains(err.Message, "…") {
		t.Errorf("message %q does not mark the truncation", err.Message)
	}

	// A short unknown type is shown whole, without an ellipsis.
	_, err = Decode([]byte(`{"type":"subscribe"}`))
	if err == nil || !strings.Contains(err.Message, `"subscribe"`) || strings.Contains(err.Message, "…") {
		t.Errorf("short unknown type: got %v", err)
	}

	// Truncation at a byte offset may split a multibyte rune; the message
	// must still be valid UTF-8 since it is sent to the client as JSON text.
	_, err = Decode([]byte(`{"type":"a` + strings.Repeat("é", 100) + `"}`))
	if err == nil || err.Code != CodeUnknownType {
		t.Fatalf("got %v, want %s", err, CodeUnknownType)
	}
	if !utf8.ValidString(err.Message) || len(err.Message) > 100 {
		t.Errorf("multibyte type: message %q (%d bytes) should be valid UTF-8 and truncated", err.Message, len(err.Message))
	}
}

// Decode cannot hand validName invalid UTF-8 (encoding/json replaces it), so
// the check is exercised directly.
func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"A", true},
		{strings.Repeat("日", 64), true},
		{strings.Repeat("日", 65), false},
		{"", false},
		{"Al\xffice", false},
		{"\xc3", false},
		{"a\u200bb", false}, // zero-width space is a format character, not printable
	} {
		if got := validName(tc.name); got != tc.ok {
			t.Errorf("validName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestErrorString(t *testing.T) {
	e := errorf(CodeBadSDP, "x=%d", 1)
	if got := e.Error(); got != "bad-sdp: x=1" {
		t.Errorf("Error() = %q", got)
	}
}

var clientTypes = map[string]bool{
	TypeJoin: true, TypeOffer: true, TypeAnswer: true, TypeCandidate: true, TypeLeave: true, TypePing: true,
}

var errorCodes = map[string]bool{
	CodeBadMessage: true, CodeTooLarge: true, CodeUnknownType: true,
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"standup","name":"Alice"}`,
		`{"type":"offer","target":"publisher","sdp":"v=0"}`,
		`{"type":"answer","target":"subscriber","sdp":"v=0"}`,
		`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 1 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"leave"}`,
		`{"type":"ping"}`,
		`{"type":"join","room":5}`,
		`{"type":"é` + strings.Repeat("日", 20) + `"}`,
		`[1]`, `null`, `"x"`, ``, "{\"type\":\"join\",\"room\":\"r\",\"name\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errorCodes[err.Code] {
				t.Fatalf("Decode returned code %q, which Decode should never produce", err.Code)
			}
			if !utf8.ValidString(err.Message) {
				t.Fatalf("error message %q is not valid UTF-8", err.Message)
			}
			return
		}
		if !clientTypes[m.Type] {
			t.Fatalf("Decode accepted type %q", m.Type)
		}
		switch m.Type {
		case TypeJoin:
			if !roomPattern.MatchString(m.Room) || !validName(m.Name) {
				t.Fatalf("accepted join with room %q name %q", m.Room, m.Name)
			}
			if n := utf8.RuneCountInString(m.Name); n < 1 || n > maxNameLength {
				t.Fatalf("accepted name of %d runes", n)
			}
		case TypeOffer, TypeAnswer:
			if m.SDP == "" {
				t.Fatalf("accepted %s without sdp", m.Type)
			}
		case TypeCandidate:
			if m.Candidate == nil || len(m.Candidate.Candidate) > maxCandidateSize {
				t.Fatalf("accepted candidate %+v", m.Candidate)
			}
			if m.Target != TargetPublisher && m.Target != TargetSubscriber {
				t.Fatalf("accepted candidate target %q", m.Target)
			}
		}
	})
}
