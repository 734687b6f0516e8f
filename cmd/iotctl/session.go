package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

func (a *app) loginCommand() *cobra.Command {
	var withToken bool
	cmd := &cobra.Command{
		Use:   "login USERNAME | login --with-token",
		Short: "Sign in and store the session in a profile",
		Long: `Sign in as USERNAME (password from $IOT_PASSWORD, else the first line of stdin), print the
user token and store the API URL and the session (with its refresh token) in the profile
(--profile, default: the current one, else "default"), which becomes the current profile.
With --with-token, store the token read from stdin (a device or consumer key) instead; that
profile becomes current only when there is none (use it with --profile / $IOT_PROFILE).

  export IOT_TOKEN=$(IOT_PASSWORD=... iotctl login root)       # the printed token works too
  iotctl login --profile prod --api https://iot.example.com admin`,
		Args: func(cmd *cobra.Command, args []string) error {
			if (withToken && len(args) != 0) || (!withToken && len(args) != 1) {
				return usageErr(cmd, "login: want USERNAME, or --with-token and the token on stdin")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.loadConfig(); err != nil {
				return err
			}
			api := a.apiURL()
			p := &profile{API: api}
			if withToken {
				tok, err := readLine(cmd)
				if err != nil || tok == "" {
					return errors.New("login --with-token: pipe the token on stdin")
				}
				p.Token = tok
			} else {
				pw := os.Getenv("IOT_PASSWORD")
				if pw == "" {
					line, err := readLine(cmd)
					if err != nil {
						return errors.New("password: set $IOT_PASSWORD or pipe it on stdin")
					}
					pw = line
				}
				c := iot.New(api)
				ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
				defer cancel()
				if err := c.SignIn(ctx, args[0], pw); err != nil {
					return err
				}
				tok, rt, exp := c.Session()
				p.LoginToken, p.Token, p.RefreshToken, p.ExpireTime, p.User = tok, tok, rt, exp, args[0]
			}
			a.cfg.Profiles[a.profileName] = p
			if !withToken || a.cfg.Current == "" {
				a.cfg.Current = a.profileName
			}
			if err := a.cfg.save(a.cfgPath); err != nil {
				return err
			}
			if withToken {
				fmt.Fprintf(a.errOut, "iotctl: token stored in profile %q\n", a.profileName)
				return nil
			}
			_, err := fmt.Fprintln(a.out, p.Token)
			return err
		},
	}
	cmd.Flags().BoolVar(&withToken, "with-token", false, "store the token read from stdin instead of signing in")
	return cmd
}

func (a *app) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use: "logout", Short: "End the profile's session (revokes its refresh token) and forget its token", Args: nArgs(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.loadConfig(); err != nil {
				return err
			}
			p := a.prof
			if p == nil {
				return fmt.Errorf("no profile %q", a.profileName)
			}
			if p.RefreshToken != "" {
				c := iot.New(p.API, iot.WithToken(p.Token))
				ctx, cancel := context.WithTimeout(cmd.Context(), a.timeout)
				defer cancel()
				if _, err := c.Core.SignOut(ctx, &corev1.SignOutRequest{RefreshToken: p.RefreshToken}); err != nil {
					fmt.Fprintln(a.errOut, "iotctl: sign out:", err)
				}
			}
			*p = profile{API: p.API}
			return a.cfg.save(a.cfgPath)
		},
	}
}

func (a *app) profilesCommand() *cobra.Command {
	list := &cobra.Command{Use: "list", Short: "List the profiles", Args: nArgs(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.loadConfig(); err != nil {
				return err
			}
			rec := records{cols: []string{"name", "current", "api", "user", "signed_in"}}
			for _, n := range a.cfg.names() {
				p := a.cfg.Profiles[n]
				rec.rows = append(rec.rows, map[string]any{"name": n, "current": n == a.cfg.Current, "api": p.API,
					"user": p.User, "signed_in": p.Token != ""})
			}
			if rec.rows == nil {
				rec.rows = []map[string]any{}
			}
			return emit(a.out, a.output, rec)
		}}
	use := &cobra.Command{Use: "use NAME", Short: "Make NAME the current profile", Args: nArgs(1, 1),
		ValidArgsFunction: a.completeProfiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.loadConfig(); err != nil {
				return err
			}
			if a.cfg.Profiles[args[0]] == nil {
				return fmt.Errorf("no profile %q", args[0])
			}
			a.cfg.Current = args[0]
			return a.cfg.save(a.cfgPath)
		}}
	del := &cobra.Command{Use: "delete NAME", Short: "Forget a profile (without signing out)", Args: nArgs(1, 1),
		ValidArgsFunction: a.completeProfiles,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.loadConfig(); err != nil {
				return err
			}
			if a.cfg.Profiles[args[0]] == nil {
				return fmt.Errorf("no profile %q", args[0])
			}
			delete(a.cfg.Profiles, args[0])
			if a.cfg.Current == args[0] {
				a.cfg.Current = ""
			}
			return a.cfg.save(a.cfgPath)
		}}
	c := group("profiles", "List, switch and delete profiles ("+"$XDG_CONFIG_HOME/iotctl/config.json)", list, use, del)
	c.Aliases = []string{"profile"}
	return c
}

func (a *app) completeProfiles(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 || a.loadConfig() != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.cfg.names(), cobra.ShellCompDirectiveNoFileComp
}
