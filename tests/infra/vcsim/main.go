// Command vcsim starts VMware's vSphere API simulator (govmomi/simulator) for virtabstract's tests.
//
// Built in GOPATH mode against Debian's golang-github-vmware-govmomi-dev; see tests/infra/vcsim.py
// and the "vcsim" section of tests/infra/README.md. On start it prints one JSON line on stdout:
// {"url": ..., "username": ..., "password": ...}, then serves until SIGINT/SIGTERM (or stdin EOF
// with -exit-on-eof).
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	model := flag.String("model", "esx", "inventory model: esx (standalone host) or vpx (vCenter)")
	vms := flag.Int("vm", 2, "VMs per resource pool (esx: per host; vpx: per standalone host and per cluster)")
	hosts := flag.Int("host", 3, "vpx: hosts per cluster")
	standalone := flag.Int("standalone-host", 1, "vpx: standalone hosts per datacenter")
	clusters := flag.Int("cluster", 1, "vpx: clusters per datacenter")
	dcs := flag.Int("dc", 1, "vpx: datacenters")
	autostart := flag.Bool("autostart", true, "power on the VMs the model creates")
	listen := flag.String("l", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	user := flag.String("username", "user", "accepted username")
	pass := flag.String("password", "pass", "accepted password")
	useTLS := flag.Bool("tls", false, "serve https (requires -cert and -key)")
	cert := flag.String("cert", "", "PEM server certificate (chain) for -tls")
	key := flag.String("key", "", "PEM private key for -tls")
	delay := flag.Int("delay", 0, "delay in ms applied to every SOAP call")
	methodDelay := flag.String("method-delay", "", "per-method delays, e.g. PowerOffVM_Task:700,PowerOnVM_Task:100")
	idle := flag.Duration("session-idle-timeout", 0, "expire sessions idle longer than this (0 = never)")
	exitOnEOF := flag.Bool("exit-on-eof", false, "exit when stdin is closed (parent died)")
	flag.Parse()

	var m *simulator.Model
	switch *model {
	case "esx":
		m = simulator.ESX()
	case "vpx":
		m = simulator.VPX()
		m.Datacenter, m.Cluster, m.ClusterHost, m.Host = *dcs, *clusters, *hosts, *standalone
	default:
		log.Fatalf("unknown -model %q (want esx or vpx)", *model)
	}
	m.Machine, m.Autostart = *vms, *autostart
	m.DelayConfig.Delay = *delay
	m.DelayConfig.MethodDelay = map[string]int{}
	for _, kv := range strings.Split(*methodDelay, ",") {
		if name, ms, ok := strings.Cut(kv, ":"); ok {
			n, err := strconv.Atoi(ms)
			if err != nil {
				log.Fatalf("bad -method-delay entry %q: %v", kv, err)
			}
			m.DelayConfig.MethodDelay[name] = n
		}
	}
	simulator.SessionIdleTimeout = *idle
	var tlsConfig *tls.Config
	if *useTLS { // before m.Create(): log.Fatal skips the deferred m.Remove()
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatalf("-tls needs -cert and -key: %v", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	}

	done := make(chan os.Signal, 1)
	// Register before printing the URL; without Notify, SIGTERM may not stop the process (README).
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)

	if err := m.Create(); err != nil {
		log.Fatal(err)
	}
	defer m.Remove()
	m.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}
	m.Service.TLS = tlsConfig  // nil: plain http
	s := m.Service.NewServer() // not Close()d on exit: Close waits for long-polling WaitForUpdatesEx calls

	u := *s.URL
	u.User = nil // s.URL carries the credentials; print them separately
	line, _ := json.Marshal(map[string]string{"url": u.String(), "username": *user, "password": *pass})
	os.Stdout.Write(append(line, '\n'))

	if *exitOnEOF {
		go func() { io.Copy(io.Discard, os.Stdin); done <- syscall.SIGHUP }()
	}
	<-done
	s.Listener.Close()
}
