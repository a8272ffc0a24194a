// Command go_longpoll is the net/http peer of Corral's long-poll benchmark
// (benches/longpoll.sh): the same routes as Corral's demo app, written the way a Go
// programmer would write them, so the fan-out latency and memory per connection of the two
// servers can be compared.
//
//	GET  /poll?topic=T     waits until a publish on T (200, the body) or -timeout (204)
//	POST /publish?topic=T  hands the body to every waiter on T; answers how many, e.g. "19000\n"
//	GET  /plaintext        "Hello, World!"
//	GET  /subscribers      how many long-polls are waiting right now, e.g. "19000\n"
//
// Usage: go_longpoll [-listen 127.0.0.1:8090] [-timeout 120s]. Set GOMAXPROCS to choose the
// number of threads running Go code. Loopback addresses only.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

const maxTopicBytes = 256

// topics holds the waiting long-polls: topic -> one buffered channel per waiter.
type topics struct {
	mu      sync.Mutex
	waiters map[string][]chan []byte
}

func (t *topics) subscribe(topic string) chan []byte {
	ch := make(chan []byte, 1) // buffered: publish never blocks on a slow waiter
	t.mu.Lock()
	t.waiters[topic] = append(t.waiters[topic], ch)
	t.mu.Unlock()
	return ch
}

// unsubscribe removes ch if it is still waiting (a publish may have taken it already).
func (t *topics) unsubscribe(topic string, ch chan []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.waiters[topic]
	for i, c := range list {
		if c == ch {
			list[i] = list[len(list)-1]
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(t.waiters, topic)
	} else {
		t.waiters[topic] = list
	}
}

func (t *topics) publish(topic string, msg []byte) int {
	t.mu.Lock()
	list := t.waiters[topic]
	delete(t.waiters, topic)
	t.mu.Unlock()
	for _, ch := range list {
		ch <- msg
	}
	return len(list)
}

func (t *topics) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, list := range t.waiters {
		n += len(list)
	}
	return n
}

func topicOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	topic := r.URL.Query().Get("topic")
	if topic == "" || len(topic) > maxTopicBytes {
		http.Error(w, "query `topic` is required (1 to 256 bytes)", http.StatusBadRequest)
		return "", false
	}
	return topic, true
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method != method {
		w.Header().Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return false
	}
	return true
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on (loopback only)")
	timeout := flag.Duration("timeout", 120*time.Second, "how long GET /poll waits before 204")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		log.Fatalf("-listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Fatalf("-listen %q: not a loopback address", *listen)
	}

	t := &topics{waiters: make(map[string][]chan []byte)}
	mux := http.NewServeMux()

	mux.HandleFunc("/poll", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodGet) {
			return
		}
		topic, ok := topicOf(w, r)
		if !ok {
			return
		}
		ch := t.subscribe(topic)
		timer := time.NewTimer(*timeout)
		defer timer.Stop()
		select {
		case msg := <-ch:
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
			w.Write(msg)
		case <-timer.C:
			t.unsubscribe(topic, ch)
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done(): // the client went away
			t.unsubscribe(topic, ch)
		}
	})

	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		if !allow(w, r, http.MethodPost) {
			return
		}
		topic, ok := topicOf(w, r)
		if !ok {
			return
		}
		msg, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d\n", t.publish(topic, msg))
	})

	mux.HandleFunc("/plaintext", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello, World!")
	})

	mux.HandleFunc("/subscribers", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", t.count())
	})

	log.Printf("go_longpoll listening on %s, poll timeout %s", *listen, *timeout)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
