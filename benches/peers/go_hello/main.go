// Command go_hello is the net/http peer of Corral's side-by-side comparison
// (benches/compare.sh): the routes of Corral's demo app that the comparison loads, written
// the way a Go programmer would write them with the standard library alone.
//
//	GET  /plaintext   "Hello, World!" (text/plain)
//	GET  /json        {"message":"Hello, World!"} through encoding/json
//	GET  /work?us=N   sleeps N µs (time.Sleep: the goroutine parks), then "ok"
//	POST /echo        the request body back
//
// Usage: go_hello [-listen 127.0.0.1:8091]. compare.sh runs it with GOMAXPROCS=1, pinned to
// one core. net/http sets TCP_NODELAY on every accepted connection. Loopback addresses only.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"time"
)

// maxWorkUs bounds /work as Corral's demo does.
const maxWorkUs = 10_000_000

type message struct {
	Message string `json:"message"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8091", "address to listen on (loopback only)")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("-listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Fatalf("-listen %q: not a loopback address", *listen)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, World!")
	})
	mux.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		body, err := json.Marshal(message{Message: "Hello, World!"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	mux.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		us, err := strconv.ParseUint(r.URL.Query().Get("us"), 10, 64)
		if err != nil || us > maxWorkUs {
			http.Error(w, "us must be a number of microseconds up to 10000000", http.StatusBadRequest)
			return
		}
		time.Sleep(time.Duration(us) * time.Microsecond)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})

	log.Printf("go_hello listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
