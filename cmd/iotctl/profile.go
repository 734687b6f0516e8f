package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// profile is one named connection: the API URL and the credentials
// `iotctl login` stored for it.
type profile struct {
	// API is the URL the profile talks to.
	API string `json:"api"`
	// LoginToken is the token login printed (what `export IOT_TOKEN=$(iotctl
	// login ...)` holds): with it in IOT_TOKEN the stored session is still
	// used, so it can be renewed.
	LoginToken string `json:"login_token,omitempty"`
	// Token is the current token: a user token renewed with RefreshToken,
	// or a device/consumer key stored by `login --with-token`.
	Token        string    `json:"token,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ExpireTime   time.Time `json:"expire_time,omitzero"`
	// User is who signed in (empty for a stored key).
	User string `json:"user,omitempty"`
}

// config is the profile file, $XDG_CONFIG_HOME/iotctl/config.json (default
// ~/.config/iotctl), mode 0600 in a 0700 directory.
type config struct {
	// Current is the profile used without --profile / $IOT_PROFILE.
	Current  string              `json:"current_profile,omitempty"`
	Profiles map[string]*profile `json:"profiles"`
}

const defaultProfile = "default"

func configPath() (string, error) {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("profile file: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "iotctl", "config.json"), nil
}

// loadConfig returns the stored profiles (none when the file does not exist).
// A session.json of earlier iotctl versions beside it becomes the "default"
// profile (written to config.json at the next save).
func loadConfig(path string) (*config, error) {
	cfg := &config{Profiles: map[string]*profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		old, oerr := os.ReadFile(filepath.Join(filepath.Dir(path), "session.json"))
		var p profile
		if oerr == nil && json.Unmarshal(old, &p) == nil && p.API != "" {
			cfg.Profiles[defaultProfile] = &p
		}
		return cfg, nil
	}
	if err != nil {
		return nil, fmt.Errorf("profile file: %w", err)
	}
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("profile file %s: %w (delete it and log in again)", path, err)
	}
	if cfg.Profiles == nil {
		cfg.Profiles = map[string]*profile{}
	}
	return cfg, nil
}

// save writes the file readable by its owner only, atomically.
func (c *config) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("profile file: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".config-*")
	if err != nil {
		return fmt.Errorf("profile file: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("profile file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("profile file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("profile file: %w", err)
	}
	return nil
}

// names returns the profile names, sorted.
func (c *config) names() []string {
	out := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// clientOptions picks the credentials: the profile's session when no token
// is given or the given one is the session's (so an expired user token is
// renewed with the refresh token), the profile's stored key when no token
// is given, else the given token as is (device and consumer keys, tokens
// from elsewhere).
func (p *profile) clientOptions(api, token string) (iot.Option, bool) {
	if p == nil || p.API != api {
		return iot.WithToken(token), false
	}
	if p.RefreshToken != "" && (token == "" || token == p.LoginToken || token == p.Token) {
		return iot.WithSession(p.Token, p.RefreshToken, p.ExpireTime), true
	}
	if token == "" {
		return iot.WithToken(p.Token), false
	}
	return iot.WithToken(token), false
}

// update stores the client's session when a call renewed it (refresh tokens
// work once, so the new one must be kept). It reports whether it changed.
func (p *profile) update(c *iot.Client) bool {
	tok, rt, exp := c.Session()
	if tok == p.Token && rt == p.RefreshToken {
		return false
	}
	p.Token, p.RefreshToken, p.ExpireTime = tok, rt, exp
	return true
}
