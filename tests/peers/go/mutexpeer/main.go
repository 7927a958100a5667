// Command mutexpeer is the Go side of machine-mutex's interoperability tests
// and benchmarks: it takes named mutexes with the real Go package
// github.com/juju/mutex (v2, Debian's golang-github-juju-mutex-dev), and
// binds the legacy abstract socket exactly as juju/mutex v1 did.
//
// Build (offline, Debian layout, GOPATH mode):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o mutexpeer ./tests/peers/go/mutexpeer
//
// In GOPATH mode the package is imported as "github.com/juju/mutex" (its
// directory); in module mode it would be "github.com/juju/mutex/v2".
//
// Protocol: one line per event on stdout, a keyword first, then fields
// separated by single spaces. Times are Unix nanoseconds (CLOCK_REALTIME);
// tests order events with the -events file, not with these times.
//
//	hold NAME [--events FILE] [--tag TAG] [--probe] [--for DURATION]
//	    [--probe: first try with a 1ms timeout; on ErrTimeout print "busy PID"
//	    and append TAG-busy] print "waiting PID", acquire (no timeout),
//	    print "acquired PID NANOS", hold until stdin reaches EOF (or DURATION
//	    passes), print "releasing PID NANOS", release, print
//	    "released PID NANOS". With --events each step is also appended to
//	    FILE (O_APPEND) as "TAG-waiting", "TAG-acquired", "TAG-releasing",
//	    "TAG-released" (TAG defaults to "go").
//	try NAME --timeout DURATION [--events FILE] [--tag TAG]
//	    acquire with that timeout: "acquired PID NANOS" then release and
//	    "released PID NANOS"; or "timeout MESSAGE" where MESSAGE is the text
//	    of mutex.ErrTimeout. Both exit 0.
//	stress NAME N COUNTERFILE [--gate]
//	    N times: acquire, one critical section on COUNTERFILE (see
//	    stressStep: the same as stress_step in tests/common/mod.rs), release.
//	    Prints "started PID" and "done N". With --gate it prints "ready PID"
//	    first and starts after reading one line from stdin, so that several
//	    processes start their loops together.
//	v1-hold NAME [--events FILE] [--tag TAG]
//	    bind the abstract Unix socket "@/var/lib/juju/mutex-/NAME" as
//	    juju/mutex v1 did (net.ListenUnix on filepath.Join of its prefix and
//	    the name), print "bound PID", hold until stdin EOF, close, print
//	    "closed PID". If the name is in use: "in-use MESSAGE", exit 3.
//	v1-try NAME
//	    bind and close at once: "bound PID" or "in-use MESSAGE" (EADDRINUSE).
//	bench-uncontended NAME N
//	    N times acquire + release in one loop; prints
//	    "bench n=N total_ns=T ns_per_op=X".
//	contend NAME N
//	    prints "ready PID", waits for one line on stdin, then N times
//	    acquire + release, and prints "bench n=N total_ns=T ns_per_op=X".
//	    Run several at once on one name to measure contended hand-off.
//	contend-stamps NAME N
//	    as contend, and also reads the clock right after each Acquire
//	    returns: prints the "bench" line, then "stamps T1 T2 ... TN" (Unix
//	    nanoseconds), from which the benchmark computes throughput and how
//	    evenly the processes were served.
//	handoff NAME
//	    the two-process hand-off benchmark: reads commands from stdin, one
//	    per line. "acquire": print "waiting PID", acquire (no timeout),
//	    print "acquired PID NANOS" with the time read right after Acquire
//	    returned. "release": read the clock, release, print
//	    "released PID NANOS" with the time read before Release. At EOF it
//	    releases if it holds, and exits.
//
// Exit status: 0 on success, 1 on an unexpected error (also printed as
// "error MESSAGE"), 2 on bad usage, 3 when v1-hold finds the socket in use.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/juju/mutex"
)

// legacyPrefix is juju/mutex v1's socket prefix; filepath.Join puts a slash
// between it and the name, and Go's net package turns the leading '@' into
// the NUL byte of an abstract address.
const legacyPrefix = "@/var/lib/juju/mutex-"

// realClock is the mutex.Clock of a real program.
type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (realClock) Now() time.Time                         { return time.Now() }

// options holds the positional arguments and --flags of one subcommand.
type options struct {
	args  []string
	flags map[string]string
}

// boolFlags take no value.
var boolFlags = map[string]bool{"probe": true, "gate": true}

func parse(args []string) options {
	o := options{flags: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			o.args = append(o.args, a)
			continue
		}
		key := strings.TrimPrefix(a, "--")
		if kv := strings.SplitN(key, "=", 2); len(kv) == 2 {
			o.flags[kv[0]] = kv[1]
			continue
		}
		if boolFlags[key] {
			o.flags[key] = "true"
			continue
		}
		if i+1 >= len(args) {
			usage("flag --%s needs a value", key)
		}
		o.flags[key] = args[i+1]
		i++
	}
	return o
}

func (o options) duration(key string) time.Duration {
	v, ok := o.flags[key]
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		usage("bad --%s %q", key, v)
	}
	return d
}

func (o options) positional(n int, names string) []string {
	if len(o.args) != n {
		usage("want %s", names)
	}
	return o.args
}

func usage(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "mutexpeer: "+format+"\n", args...)
	fmt.Fprintln(os.Stderr, "usage: mutexpeer hold|try|stress|v1-hold|v1-try|bench-uncontended|contend|contend-stamps|handoff ... (see main.go)")
	os.Exit(2)
}

func fail(err error) {
	fmt.Printf("error %v\n", err)
	fmt.Fprintf(os.Stderr, "mutexpeer: %v\n", err)
	os.Exit(1)
}

// say prints one protocol line. Stdout is unbuffered in Go (os.Stdout is
// the file itself), so each line reaches the reader at once.
func say(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
}

func now() int64 { return time.Now().UnixNano() }

// events appends "TAG-WHAT" lines to a shared file opened with O_APPEND, so
// the lines of several processes never interleave and their order is the
// order of the writes.
type events struct {
	path string
	tag  string
}

func newEvents(o options) events {
	tag := o.flags["tag"]
	if tag == "" {
		tag = "go"
	}
	return events{path: o.flags["events"], tag: tag}
}

func (e events) add(what string) {
	if e.path == "" {
		return
	}
	f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fail(err)
	}
	if _, err := f.WriteString(e.tag + "-" + what + "\n"); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func spec(name string, timeout time.Duration) mutex.Spec {
	return mutex.Spec{
		Name:    name,
		Clock:   realClock{},
		Delay:   10 * time.Millisecond,
		Timeout: timeout,
	}
}

// waitStdin returns when stdin reaches EOF, or after d if d > 0.
func waitStdin(d time.Duration) {
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	if d > 0 {
		select {
		case <-eof:
		case <-time.After(d):
		}
		return
	}
	<-eof
}

func hold(o options) {
	name := o.positional(1, "hold NAME")[0]
	ev := newEvents(o)
	pid := os.Getpid()
	if o.flags["probe"] == "true" {
		r, err := mutex.Acquire(spec(name, time.Millisecond))
		switch {
		case err == nil:
			r.Release()
			say("free %d", pid)
		case err == mutex.ErrTimeout:
			ev.add("busy")
			say("busy %d", pid)
		default:
			fail(err)
		}
	}
	ev.add("waiting")
	say("waiting %d", pid)
	r, err := mutex.Acquire(spec(name, 0))
	if err != nil {
		fail(err)
	}
	ev.add("acquired")
	say("acquired %d %d", pid, now())
	waitStdin(o.duration("for"))
	ev.add("releasing")
	say("releasing %d %d", pid, now())
	r.Release()
	ev.add("released")
	say("released %d %d", pid, now())
}

func try(o options) {
	name := o.positional(1, "try NAME --timeout D")[0]
	timeout := o.duration("timeout")
	if timeout <= 0 {
		usage("try needs --timeout greater than zero")
	}
	ev := newEvents(o)
	pid := os.Getpid()
	r, err := mutex.Acquire(spec(name, timeout))
	switch {
	case err == mutex.ErrTimeout:
		ev.add("timeout")
		say("timeout %v", err)
	case err != nil:
		fail(err)
	default:
		ev.add("acquired")
		say("acquired %d %d", pid, now())
		r.Release()
		ev.add("released")
		say("released %d %d", pid, now())
	}
}

// markerPath is Rust's Path::with_extension("inside") of the counter file.
func markerPath(counter, ext string) string {
	return strings.TrimSuffix(counter, filepath.Ext(counter)) + "." + ext
}

// stressStep is one critical section: an "inside" marker created
// exclusively detects two holders at once (an "overlap" line is appended
// to the ".overlaps" file); the counter is read, incremented and written
// back, so lost updates show up in the total too.
func stressStep(counter string) {
	marker := markerPath(counter, "inside")
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		o, err := os.OpenFile(markerPath(counter, "overlaps"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			fail(err)
		}
		_, _ = o.WriteString("overlap\n")
		_ = o.Close()
	} else {
		_ = f.Close()
	}
	var value uint64
	if data, err := os.ReadFile(counter); err == nil {
		value, _ = strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	}
	if err := os.WriteFile(counter, []byte(fmt.Sprintf("%d\n", value+1)), 0o644); err != nil {
		fail(err)
	}
	_ = os.Remove(marker)
}

func stress(o options) {
	a := o.positional(3, "stress NAME N COUNTERFILE")
	n, err := strconv.Atoi(a[1])
	if err != nil || n < 0 {
		usage("bad N %q", a[1])
	}
	if o.flags["gate"] == "true" {
		waitStartLine()
	}
	say("started %d", os.Getpid())
	for i := 0; i < n; i++ {
		r, err := mutex.Acquire(spec(a[0], 0))
		if err != nil {
			fail(err)
		}
		stressStep(a[2])
		r.Release()
	}
	say("done %d", n)
}

// bindLegacy does what juju/mutex v1's acquire did on Linux.
func bindLegacy(name string) (*net.UnixListener, error) {
	addr, err := net.ResolveUnixAddr("unix", filepath.Join(legacyPrefix, name))
	if err != nil {
		return nil, err
	}
	return net.ListenUnix("unix", addr)
}

func v1Hold(o options) {
	name := o.positional(1, "v1-hold NAME")[0]
	ev := newEvents(o)
	l, err := bindLegacy(name)
	if errors.Is(err, syscall.EADDRINUSE) {
		say("in-use %v", err)
		os.Exit(3)
	}
	if err != nil {
		fail(err)
	}
	ev.add("bound")
	say("bound %d", os.Getpid())
	waitStdin(0)
	ev.add("closing")
	if err := l.Close(); err != nil {
		fail(err)
	}
	ev.add("closed")
	say("closed %d", os.Getpid())
}

func v1Try(o options) {
	name := o.positional(1, "v1-try NAME")[0]
	l, err := bindLegacy(name)
	if errors.Is(err, syscall.EADDRINUSE) {
		say("in-use %v", err)
		return
	}
	if err != nil {
		fail(err)
	}
	say("bound %d", os.Getpid())
	if err := l.Close(); err != nil {
		fail(err)
	}
}

// loop acquires and releases n times; with stamps (len n) it records the
// time right after each Acquire returns.
func loop(name string, n int, stamps []int64) {
	s := spec(name, 0)
	start := time.Now()
	for i := 0; i < n; i++ {
		r, err := mutex.Acquire(s)
		if err != nil {
			fail(err)
		}
		if stamps != nil {
			stamps[i] = now()
		}
		r.Release()
	}
	total := time.Since(start).Nanoseconds()
	perOp := 0.0
	if n > 0 {
		perOp = float64(total) / float64(n)
	}
	say("bench n=%d total_ns=%d ns_per_op=%.1f", n, total, perOp)
}

// printStamps prints "stamps T1 T2 ..." as one line.
func printStamps(stamps []int64) {
	w := bufio.NewWriter(os.Stdout)
	w.WriteString("stamps")
	for _, t := range stamps {
		w.WriteString(" ")
		w.WriteString(strconv.FormatInt(t, 10))
	}
	w.WriteString("\n")
	if err := w.Flush(); err != nil {
		fail(err)
	}
}

func handoff(o options) {
	name := o.positional(1, "handoff NAME")[0]
	pid := os.Getpid()
	s := spec(name, 0)
	var held mutex.Releaser
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch cmd := in.Text(); cmd {
		case "acquire":
			if held != nil {
				fail(errors.New("acquire while holding"))
			}
			say("waiting %d", pid)
			r, err := mutex.Acquire(s)
			t := now()
			if err != nil {
				fail(err)
			}
			held = r
			say("acquired %d %d", pid, t)
		case "release":
			if held == nil {
				fail(errors.New("release while not holding"))
			}
			t := now()
			held.Release()
			held = nil
			say("released %d %d", pid, t)
		default:
			usage("handoff: unknown command %q", cmd)
		}
	}
	if err := in.Err(); err != nil {
		fail(err)
	}
	if held != nil {
		held.Release()
	}
}

// waitStartLine prints "ready PID" and returns after one line on stdin.
func waitStartLine() {
	say("ready %d", os.Getpid())
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fail(fmt.Errorf("waiting for the start line: %w", err))
	}
}

func count(o options, names string) (string, int) {
	a := o.positional(2, names)
	n, err := strconv.Atoi(a[1])
	if err != nil || n < 0 {
		usage("bad N %q", a[1])
	}
	return a[0], n
}

func main() {
	if len(os.Args) < 2 {
		usage("missing subcommand")
	}
	o := parse(os.Args[2:])
	switch os.Args[1] {
	case "hold":
		hold(o)
	case "try":
		try(o)
	case "stress":
		stress(o)
	case "v1-hold":
		v1Hold(o)
	case "v1-try":
		v1Try(o)
	case "bench-uncontended":
		name, n := count(o, "bench-uncontended NAME N")
		loop(name, n, nil)
	case "contend":
		name, n := count(o, "contend NAME N")
		waitStartLine()
		loop(name, n, nil)
	case "contend-stamps":
		name, n := count(o, "contend-stamps NAME N")
		stamps := make([]int64, n)
		waitStartLine()
		loop(name, n, stamps)
		printStamps(stamps)
	case "handoff":
		handoff(o)
	default:
		usage("unknown subcommand %q", os.Args[1])
	}
}
