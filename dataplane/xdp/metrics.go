package xdp

import "github.com/prometheus/client_golang/prometheus"

var (
	descPackets = prometheus.NewDesc("osim_xdp_packets_total",
		"Packets seen on the provisioning interface, by class and verdict (XDP counters, or the userspace classifier's).",
		[]string{"class", "verdict"}, nil)
	descBytes = prometheus.NewDesc("osim_xdp_bytes_total",
		"Bytes of those packets, by class and verdict.", []string{"class", "verdict"}, nil)
	descMode = prometheus.NewDesc("osim_xdp_mode",
		"1 for the mode the classifier runs in: driver, generic, userspace (XDP did not attach) or loaded.", []string{"mode"}, nil)
	descPolicy = prometheus.NewDesc("osim_xdp_policy_macs",
		"MACs on the allow and deny lists.", []string{"list"}, nil)
	descAttached = prometheus.NewDesc("osim_xdp_attached",
		"1 while the XDP program is attached to the interface it was asked for; 0 when it did not attach (the userspace classifier stands in) or was detached since.",
		[]string{"interface"}, nil)
)

// Describe implements prometheus.Collector.
func (p *Program) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPackets
	ch <- descBytes
	ch <- descMode
	ch <- descPolicy
	ch <- descAttached
}

// Collect implements prometheus.Collector: the per-CPU counters summed.
func (p *Program) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, 1, p.mode)
	if p.iface != "" { // only a Program that was to attach
		attached := 0.0
		if p.Attached() {
			attached = 1
		}
		ch <- prometheus.MustNewConstMetric(descAttached, prometheus.GaugeValue, attached, p.iface)
	}
	allow, deny := p.policySizes()
	ch <- prometheus.MustNewConstMetric(descPolicy, prometheus.GaugeValue, float64(allow), "allow")
	ch <- prometheus.MustNewConstMetric(descPolicy, prometheus.GaugeValue, float64(deny), "deny")
	packets, bytes, err := p.Counts()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPackets, err)
		return
	}
	for c := range NumClasses {
		for v := range NumVerdicts {
			ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(packets[c][v]), c.String(), v.String())
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(bytes[c][v]), c.String(), v.String())
		}
	}
}
