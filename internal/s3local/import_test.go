package s3local

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	bolt "go.etcd.io/bbolt"
)

// A dev directory written before versioning (gofakes3's BoltDB backend) is
// imported once: buckets, objects and their times; the old file is renamed.
func TestImportBoltFileKeepsTheObjectsOfAnOldDevStack(t *testing.T) {
	dir := t.TempDir()
	old, into := filepath.Join(dir, "s3.db"), filepath.Join(dir, "objects.db")
	if imported, err := ImportBoltFile(old, into); err != nil || imported {
		t.Fatalf("nothing to import: %v %v", imported, err)
	}
	db, err := bolt.Open(old, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := s3bolt.New(db)
	if err := legacy.CreateBucket("lethe-app-data"); err != nil {
		t.Fatal(err)
	}
	if _, err := legacy.PutObject("lethe-app-data", "projects/u-1001/a.txt", map[string]string{"Content-Type": "text/plain"}, strings.NewReader("hello"), 5, nil); err != nil {
		t.Fatal(err)
	}
	list, _ := legacy.ListBucket("lethe-app-data", nil, gofakes3.ListBucketPage{})
	written := list.Contents[0].LastModified.Time
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	if imported, err := ImportBoltFile(old, into); err != nil || !imported {
		t.Fatalf("import: %v %v", imported, err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old file is still there: %v", err)
	}
	if _, err := os.Stat(old + ".imported"); err != nil {
		t.Fatal(err)
	}
	fs, err := openFileStore(into)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	obj, err := fs.GetObject("lethe-app-data", "projects/u-1001/a.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(obj.Contents)
	if string(body) != "hello" || obj.Metadata["Content-Type"] != "text/plain" {
		t.Fatalf("imported %q %v", body, obj.Metadata)
	}
	list, _ = fs.ListBucket("lethe-app-data", nil, gofakes3.ListBucketPage{})
	if len(list.Contents) != 1 || !list.Contents[0].LastModified.Time.Truncate(time.Second).Equal(written.Truncate(time.Second)) {
		t.Fatalf("imported listing %+v, written at %v", list.Contents, written)
	}
	// Once imported, never again.
	if imported, err := ImportBoltFile(old+".imported", into); err != nil || imported {
		t.Fatalf("second import: %v %v", imported, err)
	}
}
