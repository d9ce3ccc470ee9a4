package ember

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func frame(typ uint8, arg uint32, id uint64, payload []byte) []byte {
	b := make([]byte, hdrSize+len(payload))
	putHeader(b, typ, arg, len(payload), id)
	copy(b[hdrSize:], payload)
	return b
}

// readFrames splits an output stream into frames.
func readFrames(t *testing.T, b []byte) []header {
	var hs []header
	for len(b) > 0 {
		h, err := decodeHeader(b)
		if err != nil {
			t.Fatalf("bad output frame: %v", err)
		}
		hs = append(hs, h)
		b = b[hdrSize+int(h.length):]
	}
	return hs
}

func TestServe(t *testing.T) {
	var in bytes.Buffer
	in.Write(frame(typeInvoke, 1000, 1, []byte("hello")))
	in.Write(frame(typePing, 0, 9, []byte("p")))
	in.Write(frame(typeInvoke, 0, 2, []byte("fail")))
	in.Write(frame(typeInvoke, 0, 3, []byte("panic")))
	var out bytes.Buffer
	s := &server{in: bufio.NewReader(&in), out: &out}
	err := s.run(func(r *Request) ([]byte, error) {
		switch string(r.Payload) {
		case "fail":
			return nil, &StatusError{Status: 7, Msg: "nope"}
		case "panic":
			panic("boom")
		}
		return append([]byte("echo:"), r.Payload...), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := readFrames(t, out.Bytes())
	want := []struct {
		typ    uint8
		arg    uint32
		id     uint64
		length uint32
	}{
		{typeResult, 0, 1, 10}, {typePong, 0, 9, 1},
		{typeResult, 7, 2, 4}, {typeResult, 1, 3, 22}, // "handler panicked: boom"
	}
	if len(hs) != len(want) {
		t.Fatalf("%d frames, want %d", len(hs), len(want))
	}
	for i, w := range want {
		h := hs[i]
		if h.typ != w.typ || h.arg != w.arg || h.id != w.id || h.length != w.length {
			t.Errorf("frame %d: %+v, want %+v", i, h, w)
		}
	}
}

func TestHostileHeaders(t *testing.T) {
	good := frame(typeInvoke, 0, 1, nil)
	cases := []struct {
		name string
		mod  func(b []byte)
		want error
	}{
		{"magic", func(b []byte) { b[0] ^= 1 }, errMagic},
		{"version", func(b []byte) { b[4] = 2 }, errVersion},
		{"type 0", func(b []byte) { b[5] = 0 }, errType},
		{"type 8", func(b []byte) { b[5] = 8 }, errType},
		{"flags", func(b []byte) { b[6] = 1 }, errReserved},
		{"ping arg", func(b []byte) { b[5] = typePing; b[8] = 1 }, errReserved},
		{"too long", func(b []byte) { binary.LittleEndian.PutUint32(b[12:], MaxPayload+1) }, errTooBig},
	}
	for _, c := range cases {
		b := append([]byte(nil), good...)
		c.mod(b)
		if _, err := decodeHeader(b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestTooLargeKeepsSync(t *testing.T) {
	var in bytes.Buffer
	big := frame(typeInvoke, 0, 1, nil)
	binary.LittleEndian.PutUint32(big[12:], MaxPayload+1)
	in.Write(big)
	in.Write(make([]byte, MaxPayload+1))
	in.Write(frame(typeInvoke, 0, 2, []byte("ok")))
	var out bytes.Buffer
	s := &server{in: bufio.NewReader(&in), out: &out}
	if err := s.run(func(r *Request) ([]byte, error) { return r.Payload, nil }); err != nil {
		t.Fatal(err)
	}
	hs := readFrames(t, out.Bytes())
	if len(hs) != 2 || hs[0].typ != typeError || hs[0].arg != errTooLarge ||
		hs[1].typ != typeResult || hs[1].id != 2 {
		t.Fatalf("got %+v", hs)
	}
}

func TestTruncated(t *testing.T) {
	in := bytes.NewReader(frame(typeInvoke, 0, 1, []byte("abc"))[:hdrSize+1])
	var out bytes.Buffer
	s := &server{in: bufio.NewReader(in), out: &out}
	if err := s.run(func(r *Request) ([]byte, error) { return nil, nil }); err == nil {
		t.Fatal("a truncated request was not an error")
	}
}
