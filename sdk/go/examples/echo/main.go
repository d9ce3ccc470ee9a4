// echo - the smallest Ember function in Go: it answers with the request.
// The runtimes bench measures the Go runtime's own cold start with it.
package main

import (
	"os"

	"ember.local/sdk/ember"
)

func main() {
	os.Exit(ember.Main(func(req *ember.Request) ([]byte, error) {
		return req.Payload, nil
	}))
}
