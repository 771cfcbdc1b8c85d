# kiln agent (windows2022 at site lab): POSTs this machine's
# facts to the kiln executor with its agent credential, as the Facts of
# docs/executor.md (the same fields the Linux agent reports).
$ErrorActionPreference = 'Stop'
$cs = Get-CimInstance Win32_ComputerSystem
$bios = Get-CimInstance Win32_BIOS
$cpus = @(Get-CimInstance Win32_Processor)
$disks = @(Get-Disk | ForEach-Object {
    @{ name = 'disk' + $_.Number; size_mib = [int64]($_.Size / 1MB); removable = ($_.BusType -eq 'USB') }
})
$nics = @(Get-NetAdapter -Physical | ForEach-Object {
    $addresses = @(Get-NetIPAddress -InterfaceIndex $_.ifIndex -ErrorAction SilentlyContinue |
        Where-Object { $_.PrefixOrigin -ne 'WellKnown' } |
        ForEach-Object { $_.IPAddress + '/' + $_.PrefixLength })
    @{ name = $_.Name; mac = $_.MacAddress.Replace('-', ':').ToLower(); addresses = $addresses }
})
$facts = @{
    hostname   = [Net.Dns]::GetHostEntry('').HostName
    serial     = $bios.SerialNumber
    vendor     = $cs.Manufacturer
    product    = $cs.Model
    cpu        = @{ count = ($cpus | Measure-Object NumberOfLogicalProcessors -Sum).Sum; model = $cpus[0].Name }
    memory_mib = [int64]($cs.TotalPhysicalMemory / 1MB)
    disks      = $disks
    nics       = $nics
}
$credential = (Get-Content -Raw 'C:\ProgramData\kiln\agent-credential').Trim()
Invoke-RestMethod -UseBasicParsing -Method Post -Uri '@@kiln:server@@/v1/agents/checkin' `
    -Headers @{ Authorization = 'Bearer ' + $credential } `
    -ContentType 'application/json' `
    -Body (@{ snapshot = $facts } | ConvertTo-Json -Depth 6 -Compress)
