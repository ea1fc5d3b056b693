// Package deploy holds what runs osim in production beside the binaries:
// Grafana dashboards (grafana/), Prometheus alert rules and their promtool
// unit tests (prometheus/), the Debian packaging (debian/). It has no code:
// its tests check the dashboards and rules are valid and name only metrics
// the manager and a boot server export.
package deploy
