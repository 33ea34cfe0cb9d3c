Import-Module PSReadLine
if ($null -eq $global:Flux2PreviousTab) {
    $previous = Get-PSReadLineKeyHandler -Chord Tab | Select-Object -First 1
    $global:Flux2PreviousTab = $previous.Function
}
$flux2Tab = 'flux2: menu completion on flux2 command lines only'
Set-PSReadLineKeyHandler -Chord Tab -Description $flux2Tab -ScriptBlock {
    param($key, $arg)
    $line = $null
    $cursor = $null
    [Microsoft.PowerShell.PSConsoleReadLine]::GetBufferState([ref]$line, [ref]$cursor)
    if ($line -match '^\s*flux2(\.exe)?(\s|$)') {
        [Microsoft.PowerShell.PSConsoleReadLine]::MenuComplete($key, $arg)
        return
    }
    switch ($global:Flux2PreviousTab) {
        'Complete' { [Microsoft.PowerShell.PSConsoleReadLine]::Complete($key, $arg) }
        'MenuComplete' { [Microsoft.PowerShell.PSConsoleReadLine]::MenuComplete($key, $arg) }
        default { [Microsoft.PowerShell.PSConsoleReadLine]::TabCompleteNext($key, $arg) }
    }
}
$scriptblock = {
    param($wordToComplete, $commandAst, $cursorPosition)
    $Env:_FLUX2_COMPLETE = "complete_powershell"
    $Env:_TYPER_COMPLETE_ARGS = $commandAst.ToString()
    $Env:_TYPER_COMPLETE_WORD_TO_COMPLETE = $wordToComplete
    flux2 | ForEach-Object {
        $commandArray = $_ -Split ":::"
        $command = $commandArray[0]
        $helpString = $commandArray[1]
        [System.Management.Automation.CompletionResult]::new(
            $command, $command, 'ParameterValue', $helpString)
    }
    $Env:_FLUX2_COMPLETE = ""
    $Env:_TYPER_COMPLETE_ARGS = ""
    $Env:_TYPER_COMPLETE_WORD_TO_COMPLETE = ""
}
Register-ArgumentCompleter -Native -CommandName flux2 -ScriptBlock $scriptblock
