package storeopensearch

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the OpenSearch store's command-line settings (`iotplatform
// serve --opensearch-*`, each with its IOT_OPENSEARCH_* variable):
// RegisterFlags binds them, Validate checks them, Config turns them into
// the Config of Open.
type Flags struct {
	// URL is one or more node URLs, comma-separated.
	URL      string
	Mode     string
	Prefix   string
	Replicas int
	Shards   int
	// Settle is Config.Settle.
	Settle time.Duration
	Auth   AuthFlags
}

// RegisterFlags binds the OpenSearch flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.URL, "opensearch-url", "IOT_OPENSEARCH_URL", "", "OpenSearch URL(s), comma-separated")
	envflag.String(fs, &c.Mode, "opensearch-index-mode", "IOT_OPENSEARCH_INDEX_MODE", ModeShared, "OpenSearch index layout: shared (one index) or per-sensor (<prefix>-<device_id>_<sensor_id>)")
	envflag.String(fs, &c.Prefix, "opensearch-prefix", "IOT_OPENSEARCH_PREFIX", "iot", "prefix of the shared OpenSearch indices and template")
	envflag.Int(fs, &c.Replicas, "opensearch-replicas", "IOT_OPENSEARCH_REPLICAS", 0, "replicas per OpenSearch shard (0 on a single node)")
	envflag.Int(fs, &c.Shards, "opensearch-shards", "IOT_OPENSEARCH_SHARDS", 1, "primary shards per readings index")
	envflag.Duration(fs, &c.Settle, "opensearch-retention-settle", "IOT_OPENSEARCH_RETENTION_SETTLE", DefaultSettle,
		"how long after it was written retention summarises a reading: longer than any bulk request takes plus the clock difference between pipeline and retention hosts")
	c.Auth.RegisterFlags(fs)
}

// Validate checks the OpenSearch flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.Mode != ModeShared && c.Mode != ModePerSensor {
		errs = append(errs, envflag.Errorf("opensearch-index-mode", "%q: want shared or per-sensor", c.Mode))
	}
	if c.Replicas < 0 {
		errs = append(errs, envflag.Errorf("opensearch-replicas", "must not be negative"))
	}
	if c.Shards <= 0 {
		errs = append(errs, envflag.Errorf("opensearch-shards", "must be positive"))
	}
	if c.Settle < time.Second {
		errs = append(errs, envflag.Errorf("opensearch-retention-settle", "%s: want at least 1s", c.Settle))
	}
	errs = append(errs, c.Auth.Validate())
	return errors.Join(errs...)
}

// Config is the store configuration the flags describe (the password
// read from its file when one is set).
func (c *Flags) Config() (Config, error) {
	var urls []string
	for _, u := range strings.Split(c.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	pw, err := c.Auth.password()
	if err != nil {
		return Config{}, err
	}
	return Config{URLs: urls, Prefix: c.Prefix, Mode: c.Mode, Replicas: c.Replicas, Shards: c.Shards, Settle: c.Settle,
		Username: c.Auth.Username, Password: pw, CAFile: c.Auth.CAFile}, nil
}

// AuthFlags are the flags for authenticating to OpenSearch and verifying
// its certificate. The password comes from IOT_OPENSEARCH_PASSWORD or a
// file, never from a flag.
type AuthFlags struct {
	Username     string
	Password     string
	PasswordFile string
	CAFile       string
}

// RegisterFlags binds the OpenSearch credential flags.
func (c *AuthFlags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Username, "opensearch-username", "IOT_OPENSEARCH_USERNAME", "", "OpenSearch basic-auth user; empty: no authentication")
	envflag.String(fs, &c.PasswordFile, "opensearch-password-file", "IOT_OPENSEARCH_PASSWORD_FILE", "", "file holding the OpenSearch password (or set IOT_OPENSEARCH_PASSWORD)")
	envflag.String(fs, &c.CAFile, "opensearch-ca-file", "IOT_OPENSEARCH_CA_FILE", "", "PEM CA bundle verifying the OpenSearch nodes' HTTPS certificates; empty: system roots")
	c.Password = os.Getenv("IOT_OPENSEARCH_PASSWORD")
}

// Validate checks the OpenSearch credential flags, naming the variables.
func (c *AuthFlags) Validate() error {
	var errs []error
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("set IOT_OPENSEARCH_PASSWORD or IOT_OPENSEARCH_PASSWORD_FILE, not both"))
	}
	if c.Username == "" && (c.Password != "" || c.PasswordFile != "") {
		errs = append(errs, errors.New("IOT_OPENSEARCH_PASSWORD[_FILE] is set without IOT_OPENSEARCH_USERNAME"))
	}
	errs = append(errs, envflag.FileReadable("IOT_OPENSEARCH_PASSWORD_FILE", c.PasswordFile), envflag.FileReadable("IOT_OPENSEARCH_CA_FILE", c.CAFile))
	return errors.Join(errs...)
}

// password returns the OpenSearch password, reading the file when set.
func (c *AuthFlags) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("IOT_OPENSEARCH_PASSWORD_FILE: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
