package app

import (
	"context"
	"testing"
)

func TestDiskSpaceCheck_NotReadyWhenTheDataDirVolumeIsFull(t *testing.T) {
	dir := t.TempDir()
	if err := diskSpaceCheck(dir, 1)(context.Background()); err != nil {
		t.Fatalf("a volume with space left reported: %v", err)
	}
	// A volume with less free space than required counts as full.
	if err := diskSpaceCheck(dir, 1<<62)(context.Background()); err == nil {
		t.Fatal("a volume below the free-space floor was reported ready")
	}
	if err := diskSpaceCheck(dir+"/missing", 1)(context.Background()); err == nil {
		t.Fatal("an unreadable data dir was reported ready")
	}
}
