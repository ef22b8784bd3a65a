// A CoreDNS with only the plugins the test cluster's Corefile uses: cluster
// names from the API (kubernetes), health and readiness for its probes, a
// cache, errors and query logs. Nothing is forwarded: the cluster answers for
// cluster.local alone.
package main

import (
	"log"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	// The upstream order of these plugins.
	if err := dnsserver.SetDirectives([]string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}); err != nil {
		log.Fatal(err)
	}
	coremain.Run()
}
