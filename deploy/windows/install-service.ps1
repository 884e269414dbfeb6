# Installs dns64d as a Windows service running the per-host shim on 127.0.0.1:53.
# Run in an elevated PowerShell from the folder holding dns64d.exe:
#   powershell -ExecutionPolicy Bypass -File install-service.ps1
# Remove with:  sc.exe stop dns64d ; sc.exe delete dns64d
$ErrorActionPreference = "Stop"
$dir = "C:\Program Files\dns64d"
New-Item -ItemType Directory -Force -Path $dir | Out-Null
Copy-Item -Force .\dns64d.exe "$dir\dns64d.exe"
if (Test-Path .\shim.toml) { Copy-Item -Force .\shim.toml "$dir\shim.toml" }

# dns64d is a console program; srvany-ng or NSSM wrap it as a service. Without
# them, sc.exe can still register it (see README.md in this folder).
sc.exe create dns64d binPath= "`"$dir\dns64d.exe`" --shim" start= auto DisplayName= "dns64d DNS shim"
sc.exe description dns64d "DNS on 127.0.0.1:53 forwarding over IPv6 (dns64d --shim)"
sc.exe start dns64d

# Point the IPv4 resolver of every connected adapter at the shim:
Get-NetAdapter | Where-Object Status -eq Up | ForEach-Object {
    Set-DnsClientServerAddress -InterfaceIndex $_.ifIndex -ServerAddresses 127.0.0.1
}
