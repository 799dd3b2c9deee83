package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Worker records what the worker's activities did. It is the observer of
// the worker's processor registry (processors.Registry.Observed) and mail
// (mail.Once.Observed); the notice activity calls NoticesSent. A nil
// *Worker records nothing.
type Worker struct {
	processorCalls    *prometheus.CounterVec
	processorDuration *prometheus.HistogramVec
	mailSent          *prometheus.CounterVec
	notices           *prometheus.CounterVec
}

// NewWorker registers the worker's series with reg.
func NewWorker(reg prometheus.Registerer) (*Worker, error) {
	w := &Worker{
		processorCalls:    counterVec(ProcessorCalls),
		processorDuration: histogramVec(ProcessorCallDuration),
		mailSent:          counterVec(MailSent),
		notices:           counterVec(NoticesSent),
	}
	for _, c := range []prometheus.Collector{w.processorCalls, w.processorDuration, w.mailSent, w.notices} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: worker: %w", err)
		}
	}
	return w, nil
}

// ProcessorCall records one call of a processor's connector.
func (w *Worker) ProcessorCall(processor, action, outcome string, took time.Duration) {
	if w == nil {
		return
	}
	p, a := label(processor), label(action)
	w.processorCalls.WithLabelValues(p, a, label(outcome)).Inc()
	w.processorDuration.WithLabelValues(p, a).Observe(took.Seconds())
}

// MailSent records one mail really sent.
func (w *Worker) MailSent(template string) {
	if w == nil {
		return
	}
	w.mailSent.WithLabelValues(label(template)).Inc()
}

// NoticesSent records a batch of notices: sent to people, and people
// without an address.
func (w *Worker) NoticesSent(template string, sent, noEmail int) {
	if w == nil {
		return
	}
	t := label(template)
	w.notices.WithLabelValues(t, "sent").Add(float64(max(sent, 0)))
	w.notices.WithLabelValues(t, "no_email").Add(float64(max(noEmail, 0)))
}

func counterVec(name string) *prometheus.CounterVec {
	s := series(name)
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: s.Name, Help: s.Help}, s.Labels)
}

func histogramVec(name string) *prometheus.HistogramVec {
	s := series(name)
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: s.Name, Help: s.Help, Buckets: buckets()}, s.Labels)
}
