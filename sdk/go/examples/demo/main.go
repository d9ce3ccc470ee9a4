// demo - an example Ember function in Go.
//
// Request (JSON): {"words": ["alpha", "beta"], "rounds": 1000, "sleep_ms": 2}
// For each word a goroutine sleeps sleep_ms (time.Sleep), then hashes the
// word `rounds` times with SHA-256 (each round hashes the previous digest)
// and sends the result on a channel; a collector goroutine gathers them
// into a map; the handler waits with a select and a timeout, runs the
// garbage collector, and answers (JSON, keys sorted):
//
//	{"count":2,"digests":{"alpha":"...","beta":"..."},"gc_ran":true,
//	 "known":1,"runtime_threads_ok":true,"summary":"2 words, 2000 rounds"}
//
// "known" counts words found in a dictionary built at initialisation (so a
// snapshot taken at READY holds it); "runtime_threads_ok" says the Go
// runtime started threads of its own (sysmon at least). {"fail": "nil"}
// dereferences a nil pointer: the panic becomes a function error (the SDK
// recovers it), which shows Go's fault handling at work. {"spin": true}
// busy-waits, without function calls, on a flag that a timer sets 5 ms
// later: with one CPU only Go's asynchronous preemption (sysmon sending
// SIGURG) lets the timer run; the answer then has "spun":true. The answer depends
// only on the request, so the same binary answers the same in Ember's micro
// guest and as a plain process (tests/integration/micro-runtimes).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ember.local/sdk/ember"
)

type request struct {
	Words   []string `json:"words"`
	Rounds  int      `json:"rounds"`
	SleepMs int      `json:"sleep_ms"`
	Fail    string   `json:"fail"`
	Spin    bool     `json:"spin"`
}

type response struct {
	Count     int               `json:"count"`
	Digests   map[string]string `json:"digests"`
	GCRan     bool              `json:"gc_ran"`
	Known     int               `json:"known"`
	ThreadsOK bool              `json:"runtime_threads_ok"`
	Summary   string            `json:"summary"`
	Spun      bool              `json:"spun,omitempty"`
}

type result struct {
	word, digest string
}

// Built once, before the first request: what a snapshot keeps.
var dictionary = func() map[string]bool {
	d := make(map[string]bool)
	for _, w := range strings.Fields("alpha beta gamma delta epsilon zeta " +
		"eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau") {
		d[w] = true
	}
	return d
}()

func digest(word string, rounds int) string {
	sum := sha256.Sum256([]byte(word))
	for i := 1; i < rounds; i++ {
		sum = sha256.Sum256(sum[:])
	}
	return hex.EncodeToString(sum[:])
}

func handle(req *ember.Request) ([]byte, error) {
	var in request
	if err := json.Unmarshal(req.Payload, &in); err != nil {
		return nil, fmt.Errorf("bad request: %v", err)
	}
	if in.Fail == "nil" {
		var nothing *request
		return []byte(nothing.Fail), nil // a nil dereference: SIGSEGV
	}
	if in.Rounds < 1 || in.Rounds > 1000000 || len(in.Words) > 1000 ||
		in.SleepMs < 0 || in.SleepMs > 1000 {
		return nil, errors.New("bad request: rounds 1..1000000, " +
			"at most 1000 words, sleep_ms 0..1000")
	}
	results := make(chan result)
	collected := make(chan map[string]string)
	go func() {
		m := make(map[string]string)
		for r := range results {
			m[r.word] = r.digest
		}
		collected <- m
	}()
	var wg sync.WaitGroup
	for _, w := range in.Words {
		wg.Add(1)
		go func(w string) {
			defer wg.Done()
			time.Sleep(time.Duration(in.SleepMs) * time.Millisecond)
			results <- result{w, digest(w, in.Rounds)}
		}(w)
	}
	wg.Wait()
	close(results)
	var digests map[string]string
	select {
	case digests = <-collected:
	case <-time.After(30 * time.Second):
		return nil, errors.New("workers did not finish")
	}
	spun := false
	if in.Spin {
		var flag int32
		time.AfterFunc(5*time.Millisecond, func() { atomic.StoreInt32(&flag, 1) })
		for atomic.LoadInt32(&flag) == 0 {
		}
		spun = true
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	runtime.GC()
	runtime.ReadMemStats(&after)
	known := 0
	for w := range digests {
		if dictionary[w] {
			known++
		}
	}
	out := response{
		Count:     len(digests),
		Digests:   digests,
		GCRan:     after.NumGC > before.NumGC,
		Known:     known,
		ThreadsOK: pprof.Lookup("threadcreate").Count() >= 2,
		Summary: fmt.Sprintf("%d words, %d rounds", len(digests),
			len(digests)*in.Rounds),
		Spun: spun,
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func main() {
	os.Exit(ember.Main(handle))
}
