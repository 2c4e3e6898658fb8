// SPDX-License-Identifier: Apache-2.0

// Package metrics serves the scheduler's stats to Prometheus: the same
// cached snapshot the stats socket answers from, under these names:
//
//	scx_qmap_go_<counter>_total                  every non-gauge stats.Counters entry
//	scx_qmap_go_<gauge>                          the cpuperf_* gauges
//	scx_qmap_go_kernel_event_total{event="SCX_EV_..."}  the kernel's sched_ext events
//	scx_qmap_go_snapshot_timestamp_seconds       when the snapshot was taken
//
// plus the standard process_* metrics of the loader process.
package metrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scx-qmap-go/scx-qmap-go/stats"
)

// Namespace prefixes every metric of ours.
const Namespace = "scx_qmap_go"

// Name is the metric name of counter @c.
func Name(c stats.Counter) string {
	if c.Gauge {
		return Namespace + "_" + c.Name
	}
	return Namespace + "_" + c.Name + "_total"
}

// Collector turns the latest published snapshot into metrics at scrape
// time; it never touches the BPF maps itself.
type Collector struct {
	cache    *stats.Cache
	counters []*prometheus.Desc // parallel to stats.Counters
	event    *prometheus.Desc
	time     *prometheus.Desc
}

// NewCollector reads from @cache.
func NewCollector(cache *stats.Cache) *Collector {
	c := &Collector{
		cache: cache,
		event: prometheus.NewDesc(Namespace+"_kernel_event_total",
			"the kernel's sched_ext event counters (/sys/kernel/sched_ext/root/events); the set depends on the kernel",
			[]string{"event"}, nil),
		time: prometheus.NewDesc(Namespace+"_snapshot_timestamp_seconds",
			"when the scheduler last took the snapshot these metrics show, Unix time", nil, nil),
	}
	for _, sc := range stats.Counters {
		c.counters = append(c.counters, prometheus.NewDesc(Name(sc), sc.Help, nil, nil))
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.counters {
		ch <- d
	}
	ch <- c.event
	ch <- c.time
}

// Collect implements prometheus.Collector. Before the first snapshot there
// is nothing to report rather than zeros that would look like a reset.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.cache.Load()
	if !ok {
		return
	}
	for i, sc := range stats.Counters {
		kind := prometheus.CounterValue
		if sc.Gauge {
			kind = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.counters[i], kind, float64(s.Values[sc.Name]))
	}
	for _, e := range s.Events {
		ch <- prometheus.MustNewConstMetric(c.event, prometheus.CounterValue, float64(e.Value), e.Name)
	}
	ch <- prometheus.MustNewConstMetric(c.time, prometheus.GaugeValue, float64(s.Time.UnixNano())/1e9)
}

// Handler serves /metrics from its own registry (no global state).
func Handler(cache *stats.Cache) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(cache), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             5 * time.Second,
	}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "scx-qmap-go: metrics at /metrics")
	})
	return mux
}

// ResolveAddr checks a --metrics-addr value and fills in the host: an empty
// host (":9090") means loopback, so only an explicit host exposes the
// metrics beyond this machine.
func ResolveAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("metrics address %q: want HOST:PORT or :PORT: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("metrics address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Listen binds @addr (see ResolveAddr) and serves /metrics from @cache.
func Listen(addr string, cache *stats.Cache) (*Server, error) {
	resolved, err := ResolveAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", resolved)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           Handler(cache),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    16 << 10,
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln) // returns http.ErrServerClosed on Close
	}()
	return s, nil
}

// Addr is the address actually bound (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving and drops open scrapes.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
