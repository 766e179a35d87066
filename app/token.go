package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kanadehq/kanade/app/auth"
	"github.com/kanadehq/kanade/store"
)

// tokenCmd manages API tokens on the server host, straight in the
// database (the server need not run): create prints the token once on
// stdout; the server audits tokens made here when it next runs.
func tokenCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("usage: kanade token create|list|revoke (see kanade help)")
	}
	sub, args := args[0], args[1:]
	var name, role, expires, id string
	flags := func(fs *flag.FlagSet) {
		if sub == "create" {
			fs.StringVar(&name, "name", "", "what the token is for (shown in the audit log)")
			fs.StringVar(&role, "role", "", "viewer, operator, approver or admin")
			fs.StringVar(&expires, "expires", "", "lifetime like 720h or 90d (default: never)")
		}
	}
	if sub == "revoke" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return errors.New("usage: kanade token revoke ID")
		}
		id, args = args[0], args[1:]
	}
	cfg, err := loadConfig("token "+sub, args, stderr, false, flags)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := cfg.PrepareData(); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DB.Driver, cfg.DBDSN())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	by := "cli"
	if u, err := user.Current(); err == nil {
		by += ":" + u.Username
	}
	if h, err := os.Hostname(); err == nil {
		by += "@" + h
	}
	switch sub {
	case "create":
		req := auth.NewTokenRequest{Name: name, By: by, FromCLI: true}
		var problems []string
		if req.Role, err = auth.ParseRole(role); err != nil {
			problems = append(problems, "--role: "+err.Error())
		}
		if expires != "" {
			d, err := auth.ParseLifetime(expires)
			if err != nil {
				problems = append(problems, "--expires: "+err.Error())
			}
			req.ExpiresIn = d
		}
		for _, fe := range auth.FieldErrors(req.Validate()) {
			if fe.Field != "role" || len(problems) == 0 {
				problems = append(problems, "--"+strings.ReplaceAll(fe.Field, "_in", "")+": "+fe.Message)
			}
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		t, secret, err := auth.CreateToken(ctx, st, req, time.Now().UTC())
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "API token %q (%s, id %s) created; it is shown only this once:\n", t.Name, t.Role, t.ID)
		fmt.Fprintln(stdout, secret)
		return nil
	case "list":
		ts, err := st.APITokens(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tROLE\tCREATED\tEXPIRES\tLAST USED\tSTATE")
		now := time.Now()
		for _, t := range ts {
			state := "active"
			if why := t.Usable(now); why != "" {
				state = strings.TrimPrefix(why, "the API token ")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, day(t.CreatedAt), day(t.ExpiresAt), day(t.LastUsedAt), state)
		}
		return w.Flush()
	case "revoke":
		t, err := st.RevokeAPIToken(ctx, id, by, time.Now().UTC(), true)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "API token %q (%s) is revoked\n", t.Name, t.ID)
		return nil
	}
	return fmt.Errorf("unknown token command %q: use create, list or revoke", sub)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02 15:04")
}
