package devstack

import (
	"fmt"
	"net"
	"strconv"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// UIOptions configure the embedded Temporal Web UI.
type UIOptions struct {
	IP               string // default 127.0.0.1
	Port             int    // default 8233
	TemporalAddress  string
	Namespace        string
	CodecEndpoint    string // the codec server the browser asks to decode payloads
	CodecPassToken   bool
	CodecCredentials bool
}

// UI is the running Web UI.
type UI struct {
	URL    string
	server *uiserver.Server
}

// StartUI serves the Temporal Web UI. The UI server exits the whole process
// when it cannot listen, so the port is checked first and a taken port is an
// ordinary error here.
func StartUI(o UIOptions) (*UI, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = 8233
	}
	addr := net.JoinHostPort(o.IP, strconv.Itoa(o.Port))
	if err := portFree(addr); err != nil {
		return nil, fmt.Errorf("temporal UI: %w", err)
	}
	srv := uiserver.NewServer(uioptions.WithConfigProvider(&uiconfig.Config{
		Host:                o.IP,
		Port:                o.Port,
		TemporalGRPCAddress: o.TemporalAddress,
		EnableUI:            true,
		DefaultNamespace:    o.Namespace,
		HideLogs:            true,
		DisableNewsFetch:    true,
		CORS:                uiconfig.CORS{CookieInsecure: true},
		Codec:               uiconfig.Codec{Endpoint: o.CodecEndpoint, PassAccessToken: o.CodecPassToken, IncludeCredentials: o.CodecCredentials},
	}))
	go func() { _ = srv.Start() }()
	return &UI{URL: "http://localhost:" + strconv.Itoa(o.Port), server: srv}, nil
}

// Stop stops the UI.
func (u *UI) Stop() { u.server.Stop() }
