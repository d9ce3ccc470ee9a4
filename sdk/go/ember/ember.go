// Package ember is the Go SDK for Ember functions: it speaks the invocation
// protocol (proto/invoke.h, docs/function-abi.md) on stdin and stdout, so a
// handler author writes one function:
//
//	func handle(req *ember.Request) ([]byte, error) {
//		return req.Payload, nil
//	}
//
//	func main() { os.Exit(ember.Main(handle)) }
//
// The program initialises once (everything before Main), then serves
// invocations in a loop; in Ember's micro guest the snapshot is taken when
// the loop first waits for work, so initialised state is what clones start
// from. The same binary runs as a plain process (ember-invoke --exec).
//
// Pure Go, standard library only: build it statically with CGO_ENABLED=0
// (docs/runtimes.md). Serves one invocation at a time; the handler may use
// goroutines freely.
package ember

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// Protocol constants (proto/invoke.h; protocol version 1).
const (
	hdrSize    = 24
	magic      = 0x46424d45 // "EMBF"
	version    = 1
	MaxPayload = 6291456 // INVOKE and RESULT payload limit (6 MiB)
	maxError   = 1024
	maxPing    = 256

	typeReady  = 1
	typeInvoke = 2
	typeResult = 3
	typeLog    = 4
	typeError  = 5
	typePing   = 6
	typePong   = 7

	errCrash    = 1
	errOOM      = 3
	errProtocol = 4
	errTooLarge = 5

	// Buffers above this are dropped after each invocation, so an idle
	// handler (what a snapshot captures) stays small.
	keepMax = 1 << 20
)

// Request is one invocation.
type Request struct {
	ID       uint64        // request id, for logs
	Payload  []byte        // valid during the call only
	Deadline time.Duration // what the caller allows (0 = none)
}

// Handler computes the response to one request. A non-nil error makes the
// invocation a function error (RESULT status 1, or Status of a
// *StatusError) whose payload is the error's text.
type Handler func(req *Request) ([]byte, error)

// StatusError is an error with the RESULT status to report (non-zero).
type StatusError struct {
	Status uint32
	Msg    string
}

func (e *StatusError) Error() string { return e.Msg }

type header struct {
	typ    uint8
	flags  uint16
	arg    uint32
	length uint32
	id     uint64
}

// maxLen is each frame type's payload limit.
func maxLen(t uint8) uint32 {
	switch t {
	case typeInvoke, typeResult:
		return MaxPayload
	case typeLog:
		return 16384
	case typeError:
		return maxError
	default:
		return maxPing // READY, PING, PONG
	}
}

var (
	errMagic    = errors.New("bad magic")
	errVersion  = errors.New("unsupported version")
	errType     = errors.New("unknown frame type")
	errReserved = errors.New("reserved flag or argument set")
	errTooBig   = errors.New("payload over the type's limit")
)

// decodeHeader validates a header in the order docs/function-abi.md
// prescribes, before any payload is read.
func decodeHeader(b []byte) (header, error) {
	h := header{
		typ:    b[5],
		flags:  binary.LittleEndian.Uint16(b[6:]),
		arg:    binary.LittleEndian.Uint32(b[8:]),
		length: binary.LittleEndian.Uint32(b[12:]),
		id:     binary.LittleEndian.Uint64(b[16:]),
	}
	if binary.LittleEndian.Uint32(b) != magic {
		return h, errMagic
	}
	if b[4] != version {
		return h, errVersion
	}
	if h.typ < typeReady || h.typ > typePong {
		return h, errType
	}
	allowed := uint16(0)
	if h.typ == typeLog {
		allowed = 1
	}
	argOK := true
	switch h.typ {
	case typeInvoke, typeResult, typeError:
	case typeLog:
		argOK = h.arg == 1 || h.arg == 2
	default:
		argOK = h.arg == 0
	}
	if h.flags&^allowed != 0 || !argOK {
		return h, errReserved
	}
	if h.length > maxLen(h.typ) {
		return h, errTooBig
	}
	return h, nil
}

func putHeader(b []byte, typ uint8, arg uint32, length int, id uint64) {
	binary.LittleEndian.PutUint32(b[0:], magic)
	b[4] = version
	b[5] = typ
	binary.LittleEndian.PutUint16(b[6:], 0)
	binary.LittleEndian.PutUint32(b[8:], arg)
	binary.LittleEndian.PutUint32(b[12:], uint32(length))
	binary.LittleEndian.PutUint64(b[16:], id)
}

// server is one invocation stream.
type server struct {
	in   *bufio.Reader
	out  io.Writer
	req  []byte // request buffer, reused while small
	resp []byte // frame buffer: header room + payload, reused while small
}

func (s *server) send(typ uint8, arg uint32, id uint64, payload []byte) error {
	buf := make([]byte, hdrSize+len(payload))
	putHeader(buf, typ, arg, len(payload), id)
	copy(buf[hdrSize:], payload)
	_, err := s.out.Write(buf)
	return err
}

func (s *server) sendError(code uint32, id uint64, msg string) error {
	if len(msg) > maxError {
		msg = msg[:maxError]
	}
	return s.send(typeError, code, id, []byte(msg))
}

// call runs the handler, turning a panic into a function error: one bad
// request must not end an instance that serves many.
func call(h Handler, req *Request) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(req)
}

func (s *server) serve(h Handler, hd header) error {
	n := int(hd.length)
	if cap(s.req) < n {
		s.req = make([]byte, n)
	}
	s.req = s.req[:n]
	if _, err := io.ReadFull(s.in, s.req); err != nil {
		return fmt.Errorf("stdin ended inside a request: %w", err)
	}
	req := &Request{ID: hd.id, Payload: s.req,
		Deadline: time.Duration(hd.arg) * time.Millisecond}
	out, herr := call(h, req)
	var status uint32
	if herr != nil {
		status = 1
		var se *StatusError
		if errors.As(herr, &se) && se.Status != 0 {
			status = se.Status
		}
		out = []byte(herr.Error())
		if len(out) > MaxPayload {
			out = out[:MaxPayload]
		}
	}
	var err error
	if len(out) > MaxPayload {
		err = s.sendError(errTooLarge, hd.id, fmt.Sprintf(
			"response of %d bytes over the %d-byte limit", len(out),
			MaxPayload))
	} else {
		// One write per RESULT (each system call is dear in a VM).
		if cap(s.resp) < hdrSize+len(out) {
			s.resp = make([]byte, hdrSize+len(out))
		}
		f := s.resp[:hdrSize+len(out)]
		putHeader(f, typeResult, status, len(out), hd.id)
		copy(f[hdrSize:], out)
		_, err = s.out.Write(f)
	}
	if cap(s.req) > keepMax {
		s.req = nil
	}
	if cap(s.resp) > keepMax {
		s.resp = nil
	}
	return err
}

// run serves frames from in until end of file between frames.
func (s *server) run(h Handler) error {
	var hb [hdrSize]byte
	for {
		if _, err := io.ReadFull(s.in, hb[:]); err != nil {
			if err == io.EOF {
				return nil // the clean end of the stream
			}
			return fmt.Errorf("stdin ended inside a frame header: %w", err)
		}
		hd, err := decodeHeader(hb[:])
		if err == errTooBig && hd.typ == typeInvoke {
			// Sound but too long: skip it and refuse this request; the
			// stream stays in sync.
			msg := fmt.Sprintf("request of %d bytes over the %d-byte limit",
				hd.length, MaxPayload)
			Log("ember-sdk: %s", msg)
			if _, err := io.CopyN(io.Discard, s.in, int64(hd.length)); err != nil {
				return err
			}
			if err := s.sendError(errTooLarge, hd.id, msg); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			msg := "bad frame on stdin: " + err.Error()
			s.sendError(errProtocol, 0, msg)
			return errors.New(msg)
		}
		switch hd.typ {
		case typeInvoke:
			if err := s.serve(h, hd); err != nil {
				return err
			}
		case typePing:
			p := make([]byte, hd.length)
			if _, err := io.ReadFull(s.in, p); err != nil {
				return err
			}
			if err := s.send(typePong, 0, hd.id, p); err != nil {
				return err
			}
		default:
			if _, err := io.CopyN(io.Discard, s.in, int64(hd.length)); err != nil {
				return err
			}
		}
	}
}

// protectStdout moves the frame stream off fd 1: frames go to a private
// duplicate, and fd 1 becomes a copy of fd 2 so stray fmt.Print calls land
// in the log instead of corrupting the stream. EMBER_SDK_KEEP_STDOUT keeps
// fd 1 as it is.
func protectStdout() io.Writer {
	if os.Getenv("EMBER_SDK_KEEP_STDOUT") != "" {
		return os.Stdout
	}
	fd, err := syscall.Dup(1)
	if err != nil {
		return os.Stdout
	}
	if err := syscall.Dup3(2, 1, 0); err != nil {
		syscall.Close(fd)
		return os.Stdout
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "ember-frames")
}

// Run serves invocations on stdin/stdout until stdin ends between frames
// (nil), or a protocol or I/O error (returned).
func Run(h Handler) error {
	s := &server{in: bufio.NewReaderSize(os.Stdin, 64<<10), out: protectStdout()}
	return s.run(h)
}

// Main is Run as a main function's exit status: 0 at the end of the
// stream, 2 on a protocol error (logged).
func Main(h Handler) int {
	if err := Run(h); err != nil {
		Log("ember-sdk: %v", err)
		return 2
	}
	return 0
}

// Log writes one line to the function's log (stderr, which the runtime
// turns into LOG frames).
func Log(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
