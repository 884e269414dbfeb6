# Installs dns64d as a Windows service running the per-host shim on 127.0.0.1:53.
# Run in an elevated PowerShell from the folder holding dns64d.exe:
#   powershell -ExecutionPolicy Bypass -File install-service.ps1
# Remove with:  & "C:\Program Files\dns64d\dns64d.exe" uninstall-service
$ErrorActionPreference = "Stop"
$dir = "C:\Program Files\dns64d"
New-Item -ItemType Directory -Force -Path $dir | Out-Null
Copy-Item -Force .\dns64d.exe "$dir\dns64d.exe"
if (Test-Path .\shim.toml) { Copy-Item -Force .\shim.toml "$dir\shim.toml" }

# dns64d speaks the Service Control Manager's protocol itself (no NSSM needed).
& "$dir\dns64d.exe" install-service --shim
if ($LASTEXITCODE -ne 0) { throw "dns64d.exe install-service failed ($LASTEXITCODE)" }
sc.exe start dns64d

# Point the IPv4 resolver of every connected adapter at the shim:
Get-NetAdapter | Where-Object Status -eq Up | ForEach-Object {
    Set-DnsClientServerAddress -InterfaceIndex $_.ifIndex -ServerAddresses 127.0.0.1
}
