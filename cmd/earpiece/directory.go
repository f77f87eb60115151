package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"

	"github.com/earpiece/earpiece/app"
	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/store"
)

// importDirectory is `earpiece config import`: the tenants of --from (default: the
// configuration file itself) replace the directory in Redis, which every running instance puts
// in force within a second. Without --force a file whose tenants are the ones last imported is
// not applied again, so that it cannot undo changes made through the API since.
func importDirectory(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config import", flag.ContinueOnError)
	path := configFlag(fs)
	from := fs.String("from", "", "file whose tenants to import (default: the --config file); a `config export` output will do")
	force := fs.Bool("force", false, "import even when the file's tenants are the ones last imported")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	tenants := cfg.Tenants
	if *from != "" {
		src, err := config.Load(*from)
		if err != nil {
			return err
		}
		tenants = src.Tenants
	}
	return withSync(cfg, func(ctx context.Context, sync *app.DirectorySync, st *store.Store) error {
		sync.Audit = func(ctx context.Context, e store.AuditEntry) error {
			e.Time = time.Now()
			_, err := st.AppendAudit(ctx, e)
			return err
		}
		wrote, err := sync.Import(ctx, tenants, "import", *force)
		if err != nil {
			return err
		}
		if !wrote {
			fmt.Fprintf(stdout, "unchanged: the directory in Redis is at revision %d (the file's tenants were imported before; --force applies them again)\n", sync.Live().Rev())
			return nil
		}
		fmt.Fprintf(stdout, "imported: the directory in Redis is at revision %d (%d tenants)\n", sync.Live().Rev(), len(tenants))
		return nil
	})
}

// exportDirectory is `earpiece config export`: the directory in force, as the YAML that
// `config import --from` takes back (importing it changes nothing). Secrets given by
// environment variable appear as their variable names only.
func exportDirectory(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("config export", flag.ContinueOnError)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	return withSync(cfg, func(ctx context.Context, _ *app.DirectorySync, st *store.Store) error {
		doc, err := st.Directory(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return errors.New("no directory in Redis yet: `earpiece config import` or `earpiece serve` puts the file's there")
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "# earpiece directory, revision %d, changed %s by %s\n", doc.Rev, doc.UpdatedAt.Format(time.RFC3339), doc.UpdatedBy)
		_, err = stdout.Write(doc.Doc)
		return err
	})
}

// withSync runs f with the store and a directory sync on cfg's Redis.
func withSync(cfg *config.Config, f func(ctx context.Context, sync *app.DirectorySync, st *store.Store) error) error {
	rdb, edge, err := newRedisClients(cfg.Redis.URL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	defer edge.Close()
	st := store.New(rdb, store.Options{AuditKey: []byte(cfg.Redis.AuditKey)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f(ctx, app.NewDirectorySync(st, cfg, os.LookupEnv, zerolog.Nop()), st)
}
