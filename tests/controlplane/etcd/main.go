// Command etcd is the etcd server: etcd's own main (go.etcd.io/etcd/v3) is one call to
// etcdmain.Main, made here so the server module is built at the version kubernetes pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
