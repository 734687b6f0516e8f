// Command iotctl administers an iotplatform and reads its data from the
// shell, through the Go SDK (sdk/go/iot). `iotctl help` lists the commands;
// docs/CLI.md describes them.
//
//	iotctl login --api http://localhost:8080 root   # password from $IOT_PASSWORD or stdin
//	iotctl devices create car "my car" -o table
//	iotctl simulate --devices 5 --sensors 3 --rate 10 --protocol mqtt
//	iotctl tail 7
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}

// app holds the global flags and what the commands share.
type app struct {
	api, token, profileName, output string
	timeout                         time.Duration
	// envErr is the first IOT_* variable that did not parse.
	envErr error

	stdin       io.Reader
	out, errOut io.Writer

	cfgPath string
	cfg     *config
	// prof is the selected profile (nil when it does not exist yet);
	// resumed says the client runs on its stored session.
	prof    *profile
	resumed bool
	client  *iot.Client
}

// usageError is a command used wrongly: its usage is printed with it.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e usageError) Error() string { return e.err.Error() }

func usageErr(cmd *cobra.Command, format string, a ...any) error {
	return usageError{cmd, fmt.Errorf(format, a...)}
}

// execute runs iotctl with args; errors are printed to errOut.
func execute(ctx context.Context, args []string, stdin io.Reader, out, errOut io.Writer) error {
	a := &app{stdin: stdin, out: out, errOut: errOut}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.ExecuteContext(ctx)
	if a.resumed && a.client != nil && a.prof.update(a.client) {
		if serr := a.cfg.save(a.cfgPath); serr != nil {
			fmt.Fprintln(errOut, "iotctl:", serr)
		}
	}
	if err == nil {
		return nil
	}
	fmt.Fprintln(errOut, "iotctl:", err)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprint(errOut, ue.cmd.UsageString())
	case strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") ||
		strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		fmt.Fprintln(errOut, "Run 'iotctl help' for usage.")
	}
	return err
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "iotctl",
		Short: "Administer an iotplatform and read its data",
		Long: `iotctl administers an iotplatform (users' devices, sensors, consumers, keys) and reads
its data (readings, latest values, live tail), and generates load with simulate.

The API URL and token come from --api / --token, else $IOT_API / $IOT_TOKEN, else the profile
(--profile, $IOT_PROFILE, else the current one) that 'iotctl login' wrote to
$XDG_CONFIG_HOME/iotctl/config.json (mode 0600); the URL defaults to http://localhost:8080.
A signed-in profile keeps its refresh token and renews the 15-minute user token when it expires.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if a.envErr != nil {
				return a.envErr
			}
			return checkFormat(a.output)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.api, "api", "", "API base URL ($IOT_API; default: the profile's, else http://localhost:8080)")
	pf.StringVar(&a.token, "token", "", "user, consumer or device token ($IOT_TOKEN; default: the profile's)")
	pf.StringVarP(&a.profileName, "profile", "p", env("IOT_PROFILE", ""), "profile to use ($IOT_PROFILE; default: the current one)")
	pf.StringVarP(&a.output, "output", "o", env("IOT_OUTPUT", formatJSON), "output format: json, table or csv ($IOT_OUTPUT)")
	pf.DurationVar(&a.timeout, "timeout", a.envDuration("IOT_TIMEOUT", 30*time.Second), "deadline of each API call ($IOT_TIMEOUT)")
	_ = root.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{formatJSON, formatTable, formatCSV}, cobra.ShellCompDirectiveNoFileComp
	})
	_ = root.RegisterFlagCompletionFunc("profile", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		if err := a.loadConfig(); err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return a.cfg.names(), cobra.ShellCompDirectiveNoFileComp
	})
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return usageError{cmd, err} })
	root.CompletionOptions.HiddenDefaultCmd = false
	root.AddGroup(&cobra.Group{ID: "admin", Title: "Administration:"}, &cobra.Group{ID: "data", Title: "Data:"},
		&cobra.Group{ID: "session", Title: "Sign-in and profiles:"})
	for _, c := range []*cobra.Command{a.devicesCommand(), a.sensorsCommand(), a.consumersCommand(), a.commandCommand()} {
		c.GroupID = "admin"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.pushCommand(), a.readingsCommand(), a.latestCommand(), a.tailCommand(), a.simulateCommand(), a.exportCommand(), a.backfillCommand()} {
		c.GroupID = "data"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{a.loginCommand(), a.logoutCommand(), a.profilesCommand()} {
		c.GroupID = "session"
		root.AddCommand(c)
	}
	return root
}

// envDuration reads a duration flag's default from its IOT_* variable; a
// value that does not parse makes every command refuse to run.
func (a *app) envDuration(k string, def time.Duration) time.Duration {
	if v := os.Getenv(k); v != "" {
		d, err := time.ParseDuration(v)
		if err == nil && d > 0 {
			return d
		}
		if a.envErr == nil {
			a.envErr = fmt.Errorf("%s=%q: want a positive duration such as 30s", k, v)
		}
	}
	return def
}

// loadConfig reads the profile file once.
func (a *app) loadConfig() error {
	if a.cfg != nil {
		return nil
	}
	path, err := configPath()
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	a.cfgPath, a.cfg = path, cfg
	if a.profileName == "" {
		a.profileName = cfg.Current
	}
	if a.profileName == "" {
		a.profileName = defaultProfile
	}
	a.prof = cfg.Profiles[a.profileName]
	return nil
}

// apiURL is --api, else $IOT_API, else the profile's, else localhost
// (without a trailing slash).
func (a *app) apiURL() string {
	switch {
	case a.api != "":
		return strings.TrimRight(a.api, "/")
	case os.Getenv("IOT_API") != "":
		return strings.TrimRight(os.Getenv("IOT_API"), "/")
	case a.prof != nil && a.prof.API != "":
		return a.prof.API
	}
	return "http://localhost:8080"
}

// connect returns the client for the selected API and credentials.
func (a *app) connect(opts ...iot.Option) (*iot.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	if err := a.loadConfig(); err != nil {
		return nil, err
	}
	if a.api == "" && a.prof == nil && a.profileName != defaultProfile && os.Getenv("IOT_API") == "" {
		return nil, fmt.Errorf("no profile %q (iotctl profiles list shows them; iotctl login --profile %s creates it)", a.profileName, a.profileName)
	}
	token := a.token
	if token == "" {
		token = os.Getenv("IOT_TOKEN")
	}
	cred, resumed := a.prof.clientOptions(a.apiURL(), token)
	a.client = iot.New(a.apiURL(), append([]iot.Option{cred}, opts...)...)
	a.resumed = resumed
	return a.client, nil
}

// call runs one API call under the --timeout deadline.
func (a *app) call(cmd *cobra.Command, fn func(ctx context.Context, c *iot.Client) (any, error)) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
	defer cancel()
	v, err := fn(ctx, c)
	if err != nil {
		return err
	}
	return emit(a.out, a.output, v)
}
