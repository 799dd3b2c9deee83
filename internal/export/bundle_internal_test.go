package export

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"path/filepath"
	"testing"
)

func TestSafePath(t *testing.T) {
	for key, want := range map[string]string{
		"projects/u-1/report 50%.pdf": "projects/u-1/report 50%.pdf",
		"projects/u-1/Zoë/été.txt":    "projects/u-1/Zoë/été.txt",
		"projects/u-1/../../etc/x":    "projects/u-1/%2E%2E/%2E%2E/etc/x",
		"projects/u-1/./a%b":          "projects/u-1/%2E/a%25b",
		"projects/u-1//a":             "projects/u-1/%00/a",
		"/abs":                        "%00/abs",
		`projects/u-1/a\..\b`:         `projects/u-1/a%5C..%5Cb`,
		"projects/u-1/bad\xffutf8":    "projects/u-1/bad%FFutf8",
		"projects/u-1/tab\there":      "projects/u-1/tab%09here",
		"projects/u-1/":               "projects/u-1/%00",
	} {
		got := safePath(key)
		if got != want {
			t.Errorf("safePath(%q) = %q, want %q", key, got, want)
		}
		if !filepath.IsLocal(got) {
			t.Errorf("safePath(%q) = %q is not local", key, got)
		}
	}
}

func TestCompressionFor(t *testing.T) {
	random := make([]byte, sniffSize)
	_, _ = rand.Read(random)
	if m := compressionFor(random); m != zip.Store {
		t.Errorf("random bytes: method %d, want Store", m)
	}
	if m := compressionFor(bytes.Repeat([]byte("lethe "), 10000)); m != zip.Deflate {
		t.Errorf("text: method %d, want Deflate", m)
	}
	if m := compressionFor(random[:100]); m != zip.Deflate {
		t.Errorf("a small file: method %d, want Deflate", m)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 4 << 20: "4.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPartSizeGrowsToFitTenThousandParts(t *testing.T) {
	for n, want := range map[int]int{1: PartSize, 2000: PartSize, 2001: 2 * PartSize, 4001: 4 * PartSize, 8001: 16 * PartSize, 10000: 16 * PartSize} {
		if got := partSize(n); got != want {
			t.Errorf("partSize(%d) = %d MiB, want %d MiB", n, got>>20, want>>20)
		}
	}
	var total int64
	for n := 1; n <= maxParts; n++ {
		total += int64(partSize(n))
	}
	if total < 300<<30 {
		t.Errorf("10,000 parts hold %d GiB", total>>30)
	}
}
