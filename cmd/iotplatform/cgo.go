//go:build cgo

package main

const cgoNote = ""
